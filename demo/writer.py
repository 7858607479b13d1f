"""Writes the demo (`python manage.py seed_demo`): the content of `content.py` and the orders of
`planner.py`, through the same services the back office, the import and the job use.

Idempotent: everything is looked up by its natural key (account name, method code, (account,
method), (template name, language), (account, level), username, (account, order number)) and only
what is missing is created; existing rows, passwords included, are left as they are. An order that
exists is never touched again, so a demo order the user has since paid, blocked or reminded stays
as it is.

How each part of an order's history is written, in the order it happened:
- the order arrives with the import of the evening it was placed (`orders_import`, one call per
  order day, dated that evening: an "imported" event each);
- reminders sent days ago: no service can send a reminder in the past (the engine sends e-mail
  *now*), so they are claimed in bulk as the engine claims them (a pending `Reminder` with the
  template rendered by `render_reminder`) and then confirmed through the engine's own transition
  `reminders_mark_sent` (which moves the order up), with one "reminder_sent" event per reminder (the
  engine's details plus "demo": true);
- dunning blocked by staff: `orders_block_dunning`;
- flagged or cancelled by the job past `cancel_after_days`: the job's service handles whatever is
  due *now* and mails the team, so this history is also written in bulk as the job writes it (the
  order fields and one "auto_<action>" event per order);
- paid: `orders_mark_paid` by the back-office user;
- cancelled by the shop: the cancellation arrives with an import (`orders_import`, "import_updated").
Every service is called with `now` set to the moment the planner chose, so the audit trail reads
in order. A service that skips an order means the plan and the rules disagree: that raises.

Cost: each service call takes the orders that share a moment (one import per order day, one
mark-paid per payment time), about 1,250 statements for the 300 orders, nearly all of them the
services' own: 1.5 s on SQLite, 2-2.5 s on PostgreSQL (2 busy cores), where inserting finished rows
took 0.5-0.6 s. Only a fresh database pays it: a second run reads some 50 rows and writes nothing."""

from __future__ import annotations

import datetime
import secrets
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from django.contrib.auth.models import Group, User
from django.db import transaction

from accounts.models import SalesAccount
from common.dates import local_midnight, local_today
from dunning import selectors
from dunning.models import DunningAutomation, DunningConfig, EmailTemplate, Reminder, ReminderAssignment
from dunning.services.cancellation import AUDIT_ACTION
from dunning.services.reminders import WentOut, reminders_mark_sent
from dunning.templating import CompiledTemplate, render_reminder
from orders.audit import order_events_log
from orders.importing import OrderRow, ParsedFile, existing_orders, orders_import
from orders.models import Order, OrderEvent, PaymentMethod, touched
from orders.services import BulkResult, orders_block_dunning, orders_mark_paid

from . import content
from .planner import Moment, OrderSpec, order_specs

IMPORT_SOURCE = "seed_demo"
MESSAGE_ID = "<demo-{number}-{level}@beispiel-shop.example>"


@dataclass
class DemoResult:
    created: dict[str, int] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)  # username -> password, only when (re)set now


class PlanConflict(Exception):
    """A service refused part of the plan (the planner and the rules disagree)."""


def _get_or_create(model, created: dict[str, int], defaults: dict | None = None, **lookup):
    obj, was_created = model.objects.get_or_create(**lookup, defaults=defaults or {})
    created[model.__name__] = created.get(model.__name__, 0) + int(was_created)
    return obj


def _users(result: DemoResult, *, reset_passwords: bool, make_password: Callable[[], str]) -> dict[str, User]:
    group = Group.objects.get(name=content.BACK_OFFICE_GROUP)
    users = {}
    for username, superuser, first_name in content.USERS:
        user, was_created = User.objects.get_or_create(
            username=username, defaults={"email": f"{username}@{content.EMAIL_DOMAIN}", "is_staff": True,
                                         "is_superuser": superuser, "first_name": first_name})
        result.created["User"] = result.created.get("User", 0) + int(was_created)
        if not user.is_staff or user.is_superuser != superuser or not user.is_active:
            user.is_staff, user.is_superuser, user.is_active = True, superuser, True
            user.save(update_fields=["is_staff", "is_superuser", "is_active"])
        if was_created or reset_passwords:
            password = make_password()
            user.set_password(password)
            user.save(update_fields=["password"])
            result.passwords[username] = password
        if not superuser:
            user.groups.add(group)
        users[username] = user
    return users


class _Clock:
    """Turns the planner's moments into aware datetimes, relative to the local day of `now`."""

    def __init__(self, now: datetime.datetime) -> None:
        self.now = now
        self.today = local_today(now)

    def __call__(self, moment: Moment) -> datetime.datetime:
        day = self.today - datetime.timedelta(days=moment.days_ago)
        return min(local_midnight(day) + datetime.timedelta(minutes=moment.minute), self.now)


def _grouped(items: Iterable[tuple[tuple, int]]) -> list[tuple[tuple, list[int]]]:
    """(key, order id) pairs -> [(key, [order ids])], keys in order of first appearance."""
    groups: dict[tuple, list[int]] = defaultdict(list)
    for key, order_id in items:
        groups[key].append(order_id)
    return list(groups.items())


def _expect_done(result: BulkResult, order_ids: list[int], what: str) -> None:
    if result.skipped:
        raise PlanConflict(f"{what}: {len(result.skipped)} of {len(order_ids)} orders skipped ({result.skip_counts})")


class _OrderWriter:
    def __init__(self, *, now: datetime.datetime, accounts: dict[str, SalesAccount],
                 methods: dict[str, PaymentMethod], templates: dict[tuple[str, str], EmailTemplate],
                 backoffice: User) -> None:
        self.at = _Clock(now)
        self.accounts, self.methods, self.templates = accounts, methods, templates
        self.backoffice = backoffice

    def row(self, spec: OrderSpec, index: int) -> OrderRow:
        """The order as the shop's export lists it when it is placed (row = its place in the plan)."""
        return OrderRow(
            row=index + 1, number=spec.number, sales_account_id=self.accounts[spec.account].id,
            payment_method_id=self.methods[spec.method].id, customer_name=spec.customer_name,
            customer_email=spec.customer_email, language=spec.language, total=spec.total, currency=spec.currency,
            ordered_at=self.at(spec.ordered), paid_at=None, cancelled_at=None, address=spec.address)

    def write(self, specs: list[OrderSpec]) -> tuple[int, int]:
        """Create the orders of `specs` not in the database yet, with their history; returns
        (orders created, reminders created)."""
        rows = [self.row(s, i) for i, s in enumerate(specs)]
        existing = existing_orders(rows)
        new = [(s, r) for s, r in zip(specs, rows, strict=True) if r.key not in existing]
        if not new:
            return 0, 0
        self._import(new)
        orders = self._load([r for _s, r in new])
        plan = [(s, orders[r.key]) for s, r in new]
        reminders = self._remind(plan)
        self._block(plan)
        self._job_history(plan)
        self._pay(plan)
        self._shop_cancellations(new)
        return len(new), reminders

    def _import(self, new: list[tuple[OrderSpec, OrderRow]]) -> None:
        by_day: dict[Moment, list[OrderRow]] = defaultdict(list)
        for spec, row in new:
            by_day[spec.imported].append(row)
        for moment in sorted(by_day, key=lambda m: m.key):
            orders_import(ParsedFile(rows=by_day[moment], existing={}), source=IMPORT_SOURCE, now=self.at(moment))

    def _load(self, rows: list[OrderRow]) -> dict[tuple[int, str], Order]:
        numbers: dict[int, list[str]] = defaultdict(list)
        for r in rows:
            numbers[r.sales_account_id].append(r.number)
        orders = {}
        for account_id, account_numbers in numbers.items():
            for order in (Order.objects.filter(sales_account_id=account_id, number__in=account_numbers)
                          .select_related("sales_account", "payment_method")):
                orders[(account_id, order.number)] = order
        return orders

    def _remind(self, plan: list[tuple[OrderSpec, Order]]) -> int:
        """Backdated reminders: claimed (pending) in bulk, then confirmed sent through the engine's
        own transition, level by level as they went out (see the module docstring)."""
        compiled: dict[int, CompiledTemplate] = {}
        reminders: list[Reminder] = []
        configs = list(DunningConfig.objects.all())
        rates = selectors.base_rates()
        for spec, order in plan:
            language = order.effective_language
            config = selectors.config_of(order, configs)
            first_deadline = None
            for level, moment in spec.reminders:
                sent_at = self.at(moment)
                name = content.LEVEL_TEMPLATES[level]
                template = self.templates.get((name, language)) or self.templates[(name, "de")]
                if template.pk not in compiled:
                    compiled[template.pk] = CompiledTemplate(template)
                sent_on = local_today(sent_at)
                deadline = selectors.reminder_deadline(config, on=sent_on)
                if level == 1:
                    first_deadline = deadline
                owed = selectors.order_claim(order, on=sent_on, levels_sent=level, config=config, rates=rates,
                                             first_deadline=first_deadline, payments=[])
                rendered = render_reminder(compiled[template.pk], order, level=level, now=sent_at, claim=owed,
                                           deadline=deadline)
                automatic = (spec.account, level) in content.AUTOMATIC
                reminders.append(Reminder(
                    order=order, level=level, template=template, recipient=order.customer_email,
                    trigger=Reminder.Trigger.AUTOMATIC if automatic else Reminder.Trigger.MANUAL,
                    sent_by=None if automatic else self.backoffice, subject=rendered.subject, body=rendered.body,
                    html_body=rendered.html_body, status=Reminder.Status.PENDING, created_at=sent_at,
                    claim_snapshot=owed.snapshot(), deadline=deadline,
                ))
        Reminder.objects.bulk_create(reminders, batch_size=500)
        ids = {(r.order_id, r.level): r.pk for r in
               Reminder.objects.filter(order_id__in={r.order_id for r in reminders}).only("id", "order_id", "level")}
        groups: dict[tuple, list[Reminder]] = defaultdict(list)
        for r in reminders:
            r.pk = ids[(r.order_id, r.level)]
            groups[(r.level, r.created_at, r.sent_by_id)].append(r)
        for (level, sent_at, _user), group in sorted(groups.items(), key=lambda g: (g[0][0], g[0][1])):
            reminders_mark_sent([WentOut(r.pk, r.order_id, level, MESSAGE_ID.format(number=r.order.number,
                                                                                      level=level)) for r in group],
                                sent_at=sent_at, now=sent_at, exact=True)
            order_events_log([(r.order_id, {"level": level, "trigger": r.trigger, "reminder": r.pk, "demo": True})
                              for r in group], action=OrderEvent.Action.REMINDER_SENT, at=sent_at,
                             user=group[0].sent_by)
        moved = Order.objects.filter(id__in=[r.order_id for r in reminders])
        if moved.exclude(reminders_sent__gte=1).exists():
            raise PlanConflict("a backdated reminder did not move its order up: the plan and the level rule disagree")
        return len(reminders)

    def _block(self, plan: list[tuple[OrderSpec, Order]]) -> None:
        groups = _grouped(((s.blocked_reason, self.at(s.blocked)), o.id) for s, o in plan if s.blocked)
        for (reason, at), order_ids in groups:
            result = orders_block_dunning(order_ids=order_ids, reason=reason, user=self.backoffice, now=at)
            _expect_done(result, order_ids, "blocking dunning")

    def _job_history(self, plan: list[tuple[OrderSpec, Order]]) -> None:
        """Prepayment orders the job flagged or cancelled (bulk, see the module docstring)."""
        Action = DunningConfig.CancellationAction
        handled: list[tuple[tuple, int]] = []
        for spec, order in plan:
            if spec.flagged:
                handled.append(((Action.FLAG, self.at(spec.flagged)), order.id))
            elif spec.auto_cancelled:
                action = Action.CANCEL_AND_RELEASE if spec.released else Action.CANCEL
                handled.append(((action, self.at(spec.cancelled)), order.id))
        values = {Action.FLAG: ("flagged_for_cancellation_at",), Action.CANCEL: ("cancelled_at",),
                  Action.CANCEL_AND_RELEASE: ("cancelled_at", "reservation_released_at")}
        for (action, at), order_ids in _grouped(handled):
            Order.objects.filter(id__in=order_ids).update(**dict.fromkeys(values[action], at), updated_at=touched())
            order_events_log(((i, {"rule": "cancel_after_days", "demo": True}) for i in order_ids),
                             action=AUDIT_ACTION[action], at=at)

    def _pay(self, plan: list[tuple[OrderSpec, Order]]) -> None:
        for (at,), order_ids in _grouped(((self.at(s.paid),), o.id) for s, o in plan if s.paid):
            result = orders_mark_paid(order_ids=order_ids, paid_at=at, user=self.backoffice, now=at)
            _expect_done(result, order_ids, "marking paid")

    def _shop_cancellations(self, new: list[tuple[OrderSpec, OrderRow]]) -> None:
        """The shop's cancellations, arriving with a later export of the same rows."""
        by_moment: dict[Moment, list[OrderRow]] = defaultdict(list)
        for spec, row in new:
            if spec.cancelled and not spec.auto_cancelled:
                by_moment[spec.cancelled].append(replace(row, cancelled_at=self.at(spec.cancelled)))
        for moment in sorted(by_moment, key=lambda m: m.key):
            rows = by_moment[moment]
            orders_import(ParsedFile(rows=rows, existing=existing_orders(rows)), source=IMPORT_SOURCE,
                          now=self.at(moment))


def demo_seed(*, now: datetime.datetime, reset_passwords: bool = False,
              make_password: Callable[[], str] = lambda: secrets.token_urlsafe(12)) -> DemoResult:
    """Create whatever of the demo data is missing (see the module docstring); returns the counts."""
    result = DemoResult()
    created = result.created
    with transaction.atomic():
        accounts = {a["name"]: _get_or_create(SalesAccount, created, name=a["name"],
                                              defaults={k: v for k, v in a.items() if k != "name"})
                    for a in content.ACCOUNTS}
        methods = {m["code"]: _get_or_create(PaymentMethod, created, code=m["code"],
                                             defaults={k: v for k, v in m.items() if k != "code"})
                   for m in content.METHODS}
        for (account, method), cfg in content.CONFIGS.items():
            _get_or_create(DunningConfig, created, sales_account=accounts[account], payment_method=methods[method],
                           defaults=cfg)
        templates = {(name, language): _get_or_create(EmailTemplate, created, name=name, language=language,
                                                      defaults=texts)
                     for (name, language), texts in content.TEMPLATES.items()}
        for account in accounts.values():
            for level, name in content.LEVEL_TEMPLATES.items():
                template = templates.get((name, account.language)) or templates[(name, "de")]
                _get_or_create(ReminderAssignment, created, sales_account=account, level=level,
                               defaults={"template": template,
                                         "send_automatically": (account.name, level) in content.AUTOMATIC})
        DunningAutomation.load()
        users = _users(result, reset_passwords=reset_passwords, make_password=make_password)
        writer = _OrderWriter(now=now, accounts=accounts, methods=methods, templates=templates,
                              backoffice=users["backoffice"])
        created["Order"], created["Reminder"] = writer.write(order_specs())
    for model in (SalesAccount, PaymentMethod, DunningConfig, EmailTemplate, ReminderAssignment, Order, Reminder):
        result.totals[model.__name__] = model.objects.count()
    result.totals["User"] = User.objects.filter(username__in=[u[0] for u in content.USERS]).count()
    return result
