"""Reads of the dunning domain. THE LEVEL RULE lives here, in `level_q`: the overview filter, the
Notify action and the automatic job all ask it, so they cannot disagree.

The rule (docs/rules/dunning-levels.md) is stated in calendar days in TIME_ZONE. Each active
config fixes the payment term and the level days, so "days overdue >= N" becomes, per config, a
plain comparison `ordered_at < <local midnight of a computed day>`: exact across daylight-saving
changes (the midnight is computed with zoneinfo), the same on SQLite and PostgreSQL, and able to
use the partial index on open orders. The loop is over configs (a handful), never over orders."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from functools import reduce
from operator import or_
from typing import Any

from django.conf import settings
from django.db.models import Case, CharField, Count, Exists, IntegerField, OuterRef, Q, QuerySet, Subquery, Value, When
from django.utils.translation import gettext_lazy as _

from common.choices import ReasonChoices
from common.compiled import CompiledRows
from common.dates import end_of_day, local_midnight, local_today
from orders.models import OPEN, Order
from payments.models import Payment

from .claim import Claim, claim_compute, deadline_after
from .models import MAX_SEND_ATTEMPTS, BaseRate, DunningConfig, DunningLevel, Reminder, ReminderAssignment

# Kept for callers that spell levels the old way; DunningLevel is the vocabulary.
Level = DunningLevel
COMPLETED = DunningLevel.COMPLETED
ALL_LEVELS: tuple[DunningLevel, ...] = tuple(DunningLevel)
NOTHING = Q(pk__in=[])


def stale_after() -> datetime.timedelta:
    """A reminder pending (in flight) longer than this has an unknown outcome; only then may staff
    settle it by hand."""
    return datetime.timedelta(minutes=settings.DUNNING_STALE_PENDING_MINUTES)


def _active_configs_query() -> QuerySet[DunningConfig]:
    return DunningConfig.objects.filter(is_active=True).select_related("payment_method", "sales_account")


# every page of the overview, Notify and the job read them: compiled once per connection
_ACTIVE_CONFIGS = CompiledRows(_active_configs_query)


def active_configs(*, sales_account_id: int | None = None) -> list[DunningConfig]:
    if sales_account_id is not None:
        return list(_active_configs_query().filter(sales_account_id=sales_account_id))
    return _ACTIVE_CONFIGS.instances()


# What one config's part of a level asks of an order besides its account and payment method:
# (minimum amount, first order instant or None, order instant before or None, last reminder before or None)
_Terms = tuple[Decimal, datetime.datetime | None, datetime.datetime | None, datetime.datetime | None]


def _level_days(config: DunningConfig, level: DunningLevel,
                today: datetime.date) -> tuple[datetime.date | None, datetime.date | None]:
    """The last local order day and the last local day of the last reminder at which an order of
    `config` is at `level` today (None: any)."""
    if level == DunningLevel.COMPLETED:
        return None, None
    # days overdue = today - (local order date + term) >= level days
    # <=> local order date <= today - level days - term
    overdue_days = config.level_days(level) + config.payment_method.payment_term_days
    ordered_by = today - datetime.timedelta(days=overdue_days)
    reminded_by = None
    if level > 1:
        # today - local date of the last reminder >= min days between reminders
        reminded_by = today - datetime.timedelta(days=config.min_days_between_reminders)
    return ordered_by, reminded_by


def _config_level_terms(config: DunningConfig, level: DunningLevel, today: datetime.date) -> _Terms:
    since = local_midnight(config.only_orders_since) if config.only_orders_since else None
    ordered_by, reminded_by = _level_days(config, level, today)
    return (config.minimum_amount, since, end_of_day(ordered_by) if ordered_by else None,
            end_of_day(reminded_by) if reminded_by else None)


# One part of a level in local days: (last order day or None, last reminded day or None) -> the
# (sales account, payment method) pairs of the configs with these days.
DayTerms = dict[tuple[datetime.date | None, datetime.date | None], set[tuple[int, int]]]


def level_day_terms(level: DunningLevel | int | str, *, now: datetime.datetime, configs: Iterable[DunningConfig],
                    clamp_days: int) -> DayTerms | None:
    """`level_terms_q` in local days, for totals of the open orders kept per local order day and
    local day of the last reminder (orders.open_totals): an order of a pair of `pairs` with
    `reminders_sent` of the level, not blocked, is at the level iff its order day is on or before
    the first day and its reminded day on or before the second (each when not None).

    None when the rule asks what such totals do not hold: a minimum amount above zero, an "only
    orders since" day, or (levels 2 and 3) a last reminded day more than `clamp_days` after the last
    order day (the totals store order days no earlier than `clamp_days` before the reminded day)."""
    level = DunningLevel.coerce(level)
    today = local_today(now)
    terms: DayTerms = {}
    for c in configs:
        if not c.is_active:
            continue
        if c.minimum_amount > 0 or c.only_orders_since is not None:
            return None
        ordered_by, reminded_by = _level_days(c, level, today)
        if reminded_by is not None and (reminded_by - ordered_by).days > clamp_days:
            return None
        terms.setdefault((ordered_by, reminded_by), set()).add((c.sales_account_id, c.payment_method_id))
    return terms


def pair_blocks(pairs: set[tuple[int, int]]) -> list[tuple[list[int], list[int]]]:
    """(sales account, payment method) in `pairs` as few (accounts, methods) blocks as the pairs
    allow: the methods that share the same set of accounts form one block (accounts x methods)."""
    accounts_by_method: dict[int, set[int]] = {}
    for account, method in pairs:
        accounts_by_method.setdefault(method, set()).add(account)
    methods_by_accounts: dict[frozenset[int], set[int]] = {}
    for method, accounts in accounts_by_method.items():
        methods_by_accounts.setdefault(frozenset(accounts), set()).add(method)
    return sorted((sorted(accounts), sorted(methods)) for accounts, methods in methods_by_accounts.items())


def _terms_q(terms: _Terms) -> Q:
    minimum, since, ordered_before, reminded_before = terms
    q = Q(total__gte=minimum)
    if since is not None:
        q &= Q(ordered_at__gte=since)
    if ordered_before is not None:
        q &= Q(ordered_at__lt=ordered_before)
    if reminded_before is not None:
        q &= Q(last_reminder_at__lt=reminded_before)
    return q


def _one_of(field: str, values: Iterable[int]) -> Q:
    values = sorted(values)
    return Q(**{field: values[0]}) if len(values) == 1 else Q(**{f"{field}__in": values})


def _pairs_q(pairs: set[tuple[int, int]]) -> Q:
    """(sales account, payment method) in `pairs`, as few `IN` blocks as the pairs allow."""
    return reduce(or_, (_one_of("sales_account_id", accounts) & _one_of("payment_method_id", methods)
                        for accounts, methods in pair_blocks(pairs)))


def level_q(level: DunningLevel | int | str, *, now: datetime.datetime, configs: Iterable[DunningConfig]) -> Q:
    """Q for "open order at `level`" (1, 2, 3 or completed) at `now` under the active `configs`
    (shared, as `level_terms_q`'s: combine it, never change it)."""
    level = DunningLevel.coerce(level)
    active = [c for c in configs if c.is_active]
    key = _level_key(level, local_today(now), active)

    def build() -> Q:
        terms = level_terms_q(level, now=now, configs=active)
        return NOTHING if terms is NOTHING else OPEN & terms

    return _cached("level", key, build)


def level_terms_q(level: DunningLevel | int | str, *, now: datetime.datetime,
                  configs: Iterable[DunningConfig]) -> Q:
    """`level_q` less "open": for orders already known to be open (an aggregate's FILTER over the
    open orders reads only order_open_sent_date_idx, which holds neither paid_at nor cancelled_at).

    Per config: the order is of its account and payment method and meets its terms (minimum
    amount, first order day, days overdue, days since the last reminder). Configs with the same
    terms are stated once, for all their (account, method) pairs (`IN` lists): a shop's configs
    mostly share their days, and nine configs in three accounts become two terms instead of nine:
    the same orders, with a fraction of the SQL to build, compile and evaluate per row
    (docs/performance-notes.md).

    Built once per level, local day and configs' terms (`_LEVEL_RULE`): a page of the overview
    asks for each level several times (the filter, the rows' levels), and building the Q is about
    0.1 ms each. The Q returned is shared: combine it (`&`, `|`, `~` copy), never change it."""
    level = DunningLevel.coerce(level)
    today = local_today(now)
    active = [c for c in configs if c.is_active]
    return _cached("terms", _level_key(level, today, active), lambda: _level_terms_q(level, today, active))


# ("terms" / "level" / "predicate", level, local day, TIME_ZONE, the active configs' terms) -> what
# `level_terms_q`, `level_q` and `level_of_loaded` build of them; cleared when full (a new day or a
# changed config makes new keys; the old ones are never asked again)
_LEVEL_RULE: dict[tuple, Any] = {}
LEVEL_RULE_CACHED = 256


def _cached(kind: str, key: tuple, build: Callable[[], Any]) -> Any:
    value = _LEVEL_RULE.get((kind, *key))
    if value is None:
        value = build()
        if len(_LEVEL_RULE) >= LEVEL_RULE_CACHED:
            _LEVEL_RULE.clear()
        _LEVEL_RULE[(kind, *key)] = value
    return value


def _level_key(level: DunningLevel, today: datetime.date, active: list[DunningConfig]) -> tuple:
    """Everything of the active configs `_config_level_terms` reads for `level` (the completed level
    reads no days, so neither the payment method's term: a config without its method loaded costs
    no query more than before)."""
    if level == DunningLevel.COMPLETED:
        terms = tuple((c.sales_account_id, c.payment_method_id, c.minimum_amount, c.only_orders_since)
                      for c in active)
    else:
        terms = tuple((c.sales_account_id, c.payment_method_id, c.minimum_amount, c.only_orders_since,
                       c.level_days(level), c.min_days_between_reminders, c.payment_method.payment_term_days)
                      for c in active)
    return level, today, settings.TIME_ZONE, terms


def _level_terms_q(level: DunningLevel, today: datetime.date, active: list[DunningConfig]) -> Q:
    pairs_by_terms: dict[_Terms, set[tuple[int, int]]] = {}
    for c in active:
        pairs_by_terms.setdefault(_config_level_terms(c, level, today), set()).add(
            (c.sales_account_id, c.payment_method_id))
    if not pairs_by_terms:
        return NOTHING
    parts = [_pairs_q(pairs) & _terms_q(terms) for terms, pairs in
             sorted(pairs_by_terms.items(), key=lambda item: sorted(item[1]))]
    # Every part requires this number of reminders sent; saying it once outside the OR lets the
    # database read one range of order_open_sent_date_idx.
    sent = Q(reminders_sent=level.reminders_sent)
    return Q(dunning_blocked=False) & sent & reduce(or_, parts)


def orders_at_level(level: DunningLevel | int | str, *, now: datetime.datetime,
                    configs: Iterable[DunningConfig] | None = None,
                    queryset: QuerySet[Order] | None = None) -> QuerySet[Order]:
    configs = active_configs() if configs is None else configs
    qs = Order.objects.all() if queryset is None else queryset
    return qs.filter(level_q(level, now=now, configs=configs))


def level_annotation(*, now: datetime.datetime, configs: Iterable[DunningConfig]) -> Case:
    """An expression giving each order's current level (a DunningLevel value) or NULL."""
    configs = list(configs)
    whens = [When(level_q(level, now=now, configs=configs), then=Value(level.value)) for level in DunningLevel]
    return Case(*whens, default=Value(None), output_field=IntegerField())


def order_level(order: Order, *, now: datetime.datetime, configs: Iterable[DunningConfig]) -> int | None:
    """One loaded order's current level (a DunningLevel value) or None: `level_annotation` without a
    query. The same `level_q` of each level, in the same order (the first that matches wins, as
    in the CASE), evaluated against the order's fields by `q_matches`: the rule is not restated.
    The API's read of one order uses it: resolving and compiling the CASE of four levels was most
    of that request's Python time (docs/performance-notes.md)."""
    return level_of_loaded(now=now, configs=configs)(order)


def level_of_loaded(*, now: datetime.datetime,
                    configs: Iterable[DunningConfig]) -> Callable[[Order], int | None]:
    """`order_level` for many loaded orders: each level's `level_q` turned into a function once
    (`q_predicate`; kept with the level's Q, `_LEVEL_RULE`), then one call per level per row."""
    active = [c for c in configs if c.is_active]
    today = local_today(now)
    levels = [(level.value, _cached("predicate", _level_key(level, today, active),
                                    lambda level=level: q_predicate(level_q(level, now=now, configs=active))))
              for level in DunningLevel]

    def level_of(order: Order) -> int | None:
        for value, matches in levels:
            if matches(order) is True:
                return value
        return None

    return level_of


_COMPARE = {
    "exact": lambda a, b: a == b,
    "in": lambda a, b: a in b,
    "gte": lambda a, b: a >= b,
    "gt": lambda a, b: a > b,
    "lte": lambda a, b: a <= b,
    "lt": lambda a, b: a < b,
}


def q_matches(q: Q, obj) -> bool:
    """Whether the model instance `obj` meets `q`, in Python, with SQL's three-valued logic (a
    comparison with NULL is unknown, and unknown is not a match). Only lookups on the instance's
    own fields (`exact`, `in`, `gte`, `gt`, `lte`, `lt`, `isnull`): anything else raises ValueError
    rather than guess."""
    return q_predicate(q)(obj) is True


Predicate = Callable[[Any], bool | None]


def q_predicate(q: Q) -> Predicate:
    """`q` as a function of a model instance giving True, False or None (unknown) by SQL's
    three-valued logic: the tree walked once, here, instead of per instance (`q_matches` per row
    and level was a twentieth of the overview's Python time). Raises ValueError for a lookup
    `q_matches` cannot evaluate."""
    parts: list[Predicate] = [q_predicate(child) if isinstance(child, Q) else _leaf(*child) for child in q.children]
    negated = bool(q.negated)
    if q.connector == Q.AND:
        def node(obj) -> bool | None:
            unknown = False
            for part in parts:
                value = part(obj)
                if value is False:
                    return negated
                if value is None:
                    unknown = True
            if unknown:
                return None
            return not negated
    else:
        def node(obj) -> bool | None:
            unknown = False
            for part in parts:
                value = part(obj)
                if value is True:
                    return not negated
                if value is None:
                    unknown = True
            if unknown:
                return None
            return negated
    return node


def _leaf(key: str, expected) -> Predicate:
    name, _, lookup = key.partition("__")
    lookup = lookup or "exact"
    if "__" in lookup or (lookup != "isnull" and lookup not in _COMPARE) or hasattr(expected, "resolve_expression"):
        raise ValueError(f"q_matches cannot evaluate {key!r}")
    if lookup == "isnull":
        want_null = bool(expected)
        return lambda obj: (getattr(obj, name) is None) == want_null
    if expected is None:
        return lambda obj: None
    compare = _COMPARE[lookup]

    def leaf(obj) -> bool | None:
        actual = getattr(obj, name)
        return None if actual is None else compare(actual, expected)

    return leaf


def live_reminder_exists(level: int) -> Exists:
    """A reminder of `level` for the order that is in flight or went out (anything but failed)."""
    return Exists(Reminder.objects.filter(order=OuterRef("pk"), level=level).exclude(status=Reminder.Status.FAILED))


def attempts_exhausted(level: int) -> Exists:
    """The order's reminder of `level` already failed MAX_SEND_ATTEMPTS times."""
    failed = (Reminder.objects.filter(order=OuterRef("pk"), level=level, status=Reminder.Status.FAILED)
              .order_by().values("order").annotate(n=Count("id")).filter(n__gte=MAX_SEND_ATTEMPTS))
    return Exists(failed)


def orders_due(level: DunningLevel | int, *, now: datetime.datetime, configs: Iterable[DunningConfig], automatic: bool,
               queryset: QuerySet[Order] | None = None) -> QuerySet[Order]:
    """Orders a reminder of `level` may go to now: at the level, none of that level in flight or
    sent, and, for the automatic job, fewer than MAX_SEND_ATTEMPTS failed attempts."""
    qs = orders_at_level(level, now=now, configs=configs, queryset=queryset).filter(~live_reminder_exists(level))
    if automatic:
        qs = qs.filter(~attempts_exhausted(level))
    return qs


def automatic_configs(level: int, configs: Iterable[DunningConfig]) -> list[DunningConfig]:
    """The configs whose account sends `level` automatically."""
    auto_accounts = set(ReminderAssignment.objects.filter(level=level, send_automatically=True)
                        .values_list("sales_account_id", flat=True))
    return [c for c in configs if c.sales_account_id in auto_accounts]


def cancellation_q(*, now: datetime.datetime, configs: Iterable[DunningConfig]) -> Q:
    """Open, unblocked prepayment orders whose age in days reached `cancel_after_days` and that
    this config's action has not handled yet (a flagged order is not flagged again)."""
    today = local_today(now)
    parts = []
    for c in configs:
        if not (c.is_active and c.payment_method.is_prepayment and c.cancel_after_days is not None):
            continue
        q = Q(sales_account_id=c.sales_account_id, payment_method_id=c.payment_method_id,
              ordered_at__lt=end_of_day(today - datetime.timedelta(days=c.cancel_after_days)))
        if c.only_orders_since:
            q &= Q(ordered_at__gte=local_midnight(c.only_orders_since))
        if c.cancellation_action == DunningConfig.CancellationAction.FLAG:
            q &= Q(flagged_for_cancellation_at__isnull=True)
        parts.append(q)
    if not parts:
        return NOTHING
    return OPEN & Q(dunning_blocked=False) & reduce(or_, parts)


# --- the send decision: why an order does not get its reminder -----------------------------------


class Skip(ReasonChoices):
    """Why an order of a Notify selection or a run got no reminder. The engine and the Notify
    confirmation both ask `skip_reason` below, so they give the same reason in the same order."""

    NOT_AT_LEVEL = "not_at_level", _("no longer at this level (paid, cancelled, blocked or reminded meanwhile)")
    IN_FLIGHT = "in_flight", _("a reminder of this level is already sent or in flight")
    ATTEMPTS_EXHAUSTED = "attempts_exhausted", _("failed three times; send it by hand")
    NO_EMAIL = "no_email", _("no e-mail address")
    BOUNCED = "bounced", _(
        "an earlier reminder to this address bounced or was marked as spam; correct the address")
    NO_TEMPLATE = "no_template", _("no template assigned for this level")
    BUSY = "busy", _("being processed by another run")
    PROVIDER_DOWN = "provider_down", _("not attempted: the e-mail provider was unavailable")
    QUEUE_DOWN = "queue_down", _("not attempted: the task queue was unreachable")


def bounced_exists() -> Exists:
    """An earlier reminder to the order's current address bounced or was marked as spam (the
    engine skips such orders until the address is corrected)."""
    return Exists(Reminder.objects.filter(order=OuterRef("pk"), recipient=OuterRef("customer_email"),
                                          status__in=[Reminder.Status.BOUNCED, Reminder.Status.COMPLAINED]))


def template_accounts(level: int) -> set[int]:
    """The sales accounts that have a template assigned for `level`."""
    return set(ReminderAssignment.objects.filter(level=level).order_by().values_list("sales_account_id", flat=True))


def due_checks(level: int, *, now: datetime.datetime, configs: Iterable[DunningConfig],
               automatic: bool) -> list[tuple[Skip, Q]]:
    """Whether the reminder is due, in the order checked: an order matching none of these is in
    `orders_due` (the same three conditions, there as one filter)."""
    checks = [(Skip.NOT_AT_LEVEL, ~level_q(level, now=now, configs=configs)),
              (Skip.IN_FLIGHT, Q(live_reminder_exists(level)))]
    if automatic:
        checks.append((Skip.ATTEMPTS_EXHAUSTED, Q(attempts_exhausted(level))))
    return checks


def delivery_checks(*, accounts_with_template: set[int]) -> list[tuple[Skip, Q]]:
    """Whether a due reminder can be delivered, in the order checked."""
    no_template = ~Q(sales_account_id__in=accounts_with_template) if accounts_with_template else Q(pk__isnull=False)
    return [(Skip.NO_EMAIL, Q(customer_email="")),
            (Skip.BOUNCED, Q(bounced_exists())),
            (Skip.NO_TEMPLATE, no_template)]


def skip_reason(checks: list[tuple[Skip, Q]]) -> Case:
    """An expression giving each order the reason of the first check it fails, or NULL when it
    passes all of them (its reminder goes out)."""
    return Case(*(When(q, then=Value(reason.value)) for reason, q in checks), default=Value(None),
                output_field=CharField())


# --- the claim (docs/rules/claim.md) ------------------------------------------------------------
# dunning.claim.claim_compute is pure; these reads gather what it takes. The engine loads the base
# rates once per batch and the first deadlines and payments once per chunk (never per order).

ClaimPayments = list[tuple[datetime.date, Decimal]]


def claim_payments_by_order(order_ids: Iterable[int]) -> dict[int, ClaimPayments]:
    """What each order's customer paid, as (booking date, amount), oldest first: the payments matched
    to the order (bank statements, staff assignment). THE one place payments are wired into the
    claim: one query for all `order_ids`."""
    paid: dict[int, ClaimPayments] = {}
    rows = (Payment.objects.filter(order_id__in=list(order_ids), kind=Payment.Kind.CREDIT)
            .order_by("booked_on", "id").values_list("order_id", "booked_on", "amount"))
    for order_id, booked_on, amount in rows:
        paid.setdefault(order_id, []).append((booked_on, amount))
    return paid


def claim_payments(order: Order) -> ClaimPayments:
    return claim_payments_by_order([order.id]).get(order.id, [])


_BASE_RATES = CompiledRows(lambda: BaseRate.objects.order_by("valid_from").values_list("valid_from", "rate"))


def base_rates() -> list[tuple[datetime.date, Decimal]]:
    """All base rates as (valid from, rate), oldest first: a few dozen rows at most (the SQL
    compiled once per connection: the overview reads them on every page)."""
    return _BASE_RATES.tuples()


def first_deadlines(order_ids: Iterable[int]) -> dict[int, datetime.date]:
    """The deadline each order's live first reminder set (one query). A level-1 reminder sent before
    deadlines were stored has none: for a consumer, default then has no known start (no interest)."""
    return dict(Reminder.objects.filter(order_id__in=list(order_ids), level=DunningLevel.FIRST,
                                        deadline__isnull=False)
                .exclude(status=Reminder.Status.FAILED).values_list("order_id", "deadline"))


def first_deadline_subquery() -> Subquery:
    """The deadline the order's live first reminder set, as a subquery per order row (what
    `first_deadlines` reads, for a query that reads the rows anyway: no query of its own)."""
    return Subquery(Reminder.objects.filter(order=OuterRef("pk"), level=DunningLevel.FIRST, deadline__isnull=False)
                    .exclude(status=Reminder.Status.FAILED).order_by("-pk").values("deadline")[:1])


def config_of(order: Order, configs: Iterable[DunningConfig] | None = None) -> DunningConfig | None:
    """The config of the order's (sales account, payment method): from `configs` when given, else
    read (active or not: the claim settings apply to reminders already sent)."""
    key = (order.sales_account_id, order.payment_method_id)
    if configs is not None:
        return next((c for c in configs if (c.sales_account_id, c.payment_method_id) == key), None)
    return DunningConfig.objects.filter(sales_account_id=key[0], payment_method_id=key[1]).first()


def order_claim(order: Order, *, on: datetime.date, levels_sent: int, config: DunningConfig | None,
                rates: list[tuple[datetime.date, Decimal]], first_deadline: datetime.date | None,
                payments: ClaimPayments) -> Claim:
    """The claim of `order` on `on` with `levels_sent` reminders sent (levels 1..n), from data already
    loaded; no query. Without a config: no fees, no flat fee, no interest."""
    due = order.due_date or datetime.date.max - datetime.timedelta(days=1)
    return claim_compute(
        total=order.total, currency=order.currency, is_business=order.customer_is_business, due_date=due,
        first_deadline=first_deadline, levels_sent=range(1, levels_sent + 1),
        fees=config.fees if config else {}, charge_flat_fee_b2b=bool(config and config.charge_flat_fee_b2b),
        charge_interest=bool(config and config.charge_interest), base_rates=rates, payments=payments, on=on)


def claims_today(orders: Sequence[Order], *, on: datetime.date,
                 configs: Iterable[DunningConfig], annotated: bool = False) -> dict[int, Claim]:
    """The claim of each of `orders` on `on` (the overview's "Total due", for one page of rows):
    three queries whatever the number of orders (the base rates, the first deadlines and the
    payments of these orders), one or two when the rows carry `first_deadline` and `paid_amount`
    (`annotated`: read with `first_deadline_subquery()` and `payments.selectors.with_paid_amount`):
    then the payments are read only for the orders with a `paid_amount` above zero (every payment
    is positive, a constraint: an order without is one without payments), and not at all when none
    has one. One more only when an order's config is not among `configs` (an inactive one: its
    settings still apply to the reminders it sent, as on the order page)."""
    ids = [order.pk for order in orders]
    if not ids:
        return {}
    rates = base_rates()
    firsts = {o.pk: o.first_deadline for o in orders} if annotated else first_deadlines(ids)
    paid_ids = [o.pk for o in orders if o.paid_amount] if annotated else ids
    paid = claim_payments_by_order(paid_ids) if paid_ids else {}
    by_key = {(c.sales_account_id, c.payment_method_id): c for c in configs}
    missing = {(o.sales_account_id, o.payment_method_id) for o in orders} - by_key.keys()
    if missing:
        wanted = reduce(or_, (Q(sales_account_id=a, payment_method_id=m) for a, m in missing))
        by_key.update({(c.sales_account_id, c.payment_method_id): c for c in DunningConfig.objects.filter(wanted)})
    return {
        order.pk: order_claim(order, on=on, levels_sent=order.reminders_sent,
                              config=by_key.get((order.sales_account_id, order.payment_method_id)), rates=rates,
                              first_deadline=firsts.get(order.pk), payments=paid.get(order.pk, []))
        for order in orders
    }


DEFAULT_DEADLINE_DAYS = 7  # an order without a config (none to remind it): the model's default


def reminder_deadline(config: DunningConfig | None, *, on: datetime.date) -> datetime.date:
    """The payment deadline a reminder sent on `on` under `config` sets."""
    return deadline_after(on, config.payment_deadline_days if config else DEFAULT_DEADLINE_DAYS)


def order_claim_on(order: Order, *, now: datetime.datetime, level: int | None = None,
                   configs: Iterable[DunningConfig] | None = None) -> tuple[Claim, datetime.date]:
    """The claim of one order today and the deadline a reminder sent today would set (a handful of
    queries: the order page, a preview). With `level` (the reminder about to be sent) its levels
    count as sent, and at level 1 its deadline is the first deadline. `configs`: the configs loaded
    already (the order's own among them), to save reading it again."""
    config = config_of(order, configs)
    today = local_today(now)
    deadline = reminder_deadline(config, on=today)
    levels_sent = level if level is not None else order.reminders_sent
    first = deadline if level == DunningLevel.FIRST else first_deadlines([order.id]).get(order.id)
    claim = order_claim(order, on=today, levels_sent=levels_sent, config=config, rates=base_rates(),
                        first_deadline=first, payments=claim_payments(order))
    return claim, deadline
