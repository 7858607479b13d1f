"""Reads behind the back-office pages: the overview rows with their badges, the capped count,
the level counts and what a Notify would do. Levels always come from dunning.selectors."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Value
from django.utils.functional import cached_property

from dunning import selectors as dunning_selectors
from dunning.models import DunningConfig, EmailTemplate, Reminder, ReminderAssignment
from dunning.selectors import ALL_LEVELS, level_annotation, level_q
from dunning.services import TemplateResolver
from dunning.templating import CompiledTemplate, RenderedEmail, order_context
from orders.models import OPEN, Order

COUNT_CAP = 10_000


def stale_after() -> datetime.timedelta:
    """A reminder pending (in flight) longer than this has an unknown outcome."""
    return datetime.timedelta(minutes=getattr(settings, "DUNNING_STALE_PENDING_MINUTES", 15))


def open_orders(*, now: datetime.datetime, configs: Iterable[DunningConfig]) -> QuerySet[Order]:
    """All open orders with what the overview shows of their account and payment method and
    their current level (NULL when in none)."""
    return (
        Order.objects.filter(OPEN)
        .select_related("sales_account", "payment_method")
        .annotate(current_level=level_annotation(now=now, configs=configs))
    )


def with_badges(qs: QuerySet[Order], *, now: datetime.datetime) -> QuerySet[Order]:
    """Badge flags as EXISTS subqueries, evaluated only for the rows of the page."""
    reminders = Reminder.objects.filter(order=OuterRef("pk"))
    pending = reminders.filter(status=Reminder.Status.PENDING)
    return qs.annotate(
        # the next level's reminder failed and none of that level went out since
        last_send_failed=Exists(reminders.filter(status=Reminder.Status.FAILED, level=OuterRef("reminders_sent") + 1)),
        in_flight=Exists(pending),
        outcome_unknown=Exists(pending.filter(created_at__lt=now - stale_after())),
        address_bounced=bounced_exists(),
    )


def bounced_exists() -> Exists:
    """An earlier reminder to the order's current address bounced or was marked as spam (the
    engine skips such orders until the address is corrected)."""
    return Exists(
        Reminder.objects.filter(
            order=OuterRef("pk"),
            recipient=OuterRef("customer_email"),
            status__in=[Reminder.Status.BOUNCED, Reminder.Status.COMPLAINED],
        )
    )


class CappedPaginator(Paginator):
    """Counts at most COUNT_CAP rows (SELECT COUNT(*) FROM (... LIMIT cap+1)) instead of a full
    COUNT(*) over a million orders; `is_capped` tells the page to say "more than".

    `known_count`: the exact count when the caller has it already (a level-filtered list is
    exactly its level tab, counted by `level_counts`), so no count query runs.

    A page is read in two steps: the page's ids (the filters and the sort only, LIMIT/OFFSET), then
    `rows(ids)`: the rows with what the page shows of them (level, badges, account, method),
    computed for those ids only. In one query PostgreSQL evaluated those annotations for every
    matching order before the top-N sort (tens of thousands at one level). The page keeps the
    order of the ids."""

    cap = COUNT_CAP
    is_capped = False

    def __init__(
        self,
        object_list,
        per_page,
        *args,
        known_count: int | None = None,
        rows: Callable[[list[int]], Iterable[Any]] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(object_list, per_page, *args, **kwargs)
        self.known_count = known_count
        self.rows = rows

    @cached_property
    def count(self) -> int:
        if self.known_count is not None:
            n = self.known_count
        else:
            n = self.object_list.order_by().values("pk")[: self.cap + 1].count()
        self.is_capped = n > self.cap
        return min(n, self.cap)

    def page(self, number):
        if self.rows is None:
            return super().page(number)
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        if top + self.orphans >= self.count:
            top = self.count
        ids = list(self.object_list.values_list("pk", flat=True)[bottom:top]) if top > bottom else []
        by_id = {row.pk: row for row in self.rows(ids)} if ids else {}
        return self._get_page([by_id[pk] for pk in ids if pk in by_id], number, self)


def count_each(*querysets: QuerySet) -> list[int]:
    """COUNT(*) of each queryset, in one query: `SELECT (SELECT COUNT(*) FROM (...)), ...`. Each
    subquery selects a constant, so it can be an index-only scan."""
    db = querysets[0].db
    columns, params = [], []
    for qs in querysets:
        sql, qs_params = qs.order_by().values(one=Value(1)).query.get_compiler(db).as_sql()
        columns.append(f"(SELECT COUNT(*) FROM ({sql}) AS counted)")  # noqa: S608 - Django's SQL, params apart
        params.extend(qs_params)
    with connections[db].cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(columns), params)
        return [int(n) for n in cursor.fetchone()]


def level_counts(qs: QuerySet[Order], *, now: datetime.datetime, configs: list[DunningConfig]) -> dict[Any, int]:
    """How many orders of `qs` are at each level, in one query of one COUNT subquery per level.

    Each count is an index-only scan of one range of order_open_sent_date_idx (`level_q` states
    the number of reminders sent outside its OR over configs). One COUNT(...) FILTER per level
    over all open orders instead read every open order's row and tested it against all four
    levels (85 ms at a million orders)."""
    active = [c for c in configs if c.is_active]
    if not active:
        return dict.fromkeys(ALL_LEVELS, 0)
    counts = count_each(*(qs.filter(level_q(level, now=now, configs=active)) for level in ALL_LEVELS))
    return dict(zip(ALL_LEVELS, counts, strict=True))


# --- what a Notify would do ---------------------------------------------------------------------


@dataclass
class TemplateGroup:
    account_name: str
    language: str
    template: EmailTemplate | None
    count: int


@dataclass
class NotifyPlan:
    level: int
    selected: int
    not_at_level: int
    in_flight: int
    no_email: int
    bounced: int
    no_template: int
    will_send: int
    groups: list[TemplateGroup] = field(default_factory=list)
    preview_order: Order | None = None
    preview: RenderedEmail | None = None
    preview_template: EmailTemplate | None = None
    preview_error: str = ""

    @property
    def skipped(self) -> int:
        return self.not_at_level + self.in_flight + self.no_email + self.bounced + self.no_template


def notify_plan(
    selection: QuerySet[Order], *, level: int, now: datetime.datetime, configs: list[DunningConfig]
) -> NotifyPlan:
    """Counts (a fixed number of queries, whatever the size of the selection), the template per
    account and language, and a rendered preview of one reminder that would go out.

    The orders due are read once, grouped by account and language, with their skip reasons
    counted per group; the totals, the reasons and the template groups are sums over those few
    rows (an aggregate and a GROUP BY over the same rows, each with the EXISTS per order, cost
    twice as much)."""
    selection = selection.order_by()
    at_level = dunning_selectors.orders_at_level(level, now=now, configs=configs, queryset=selection)
    selected, n_at_level = count_each(selection, at_level)
    due = dunning_selectors.orders_due(level, now=now, configs=configs, automatic=False, queryset=selection)
    resolver = TemplateResolver(level)
    # the order of the engine's checks: no address, address bounced, no template
    has_email = ~Q(customer_email="")
    rows = (
        due.values("sales_account_id", "sales_account__name", "sales_account__language", "language")
        .annotate(
            due=Count("pk"),
            no_email=Count("pk", filter=Q(customer_email="")),
            bounced=Count("pk", filter=has_email & Q(bounced_exists())),
        )
        .order_by("sales_account__name", "language")
    )
    assigned = set(ReminderAssignment.objects.filter(level=level).order_by().values_list("sales_account_id", flat=True))
    totals = dict.fromkeys(("due", "no_email", "bounced", "no_template"), 0)
    merged: dict[tuple[int, str], TemplateGroup] = {}
    for row in rows:
        account_id = row["sales_account_id"]
        sendable = row["due"] - row["no_email"] - row["bounced"]
        if account_id not in assigned:
            totals["no_template"] += sendable
        for name in ("due", "no_email", "bounced"):
            totals[name] += row[name]
        if not sendable:
            continue
        language = row["language"] or row["sales_account__language"]
        key = (account_id, language)
        if key in merged:
            merged[key].count += sendable
            continue
        merged[key] = TemplateGroup(
            account_name=row["sales_account__name"],
            language=language,
            template=resolver.template_for(account_id, language),
            count=sendable,
        )
    plan = NotifyPlan(
        level=level,
        selected=selected,
        not_at_level=selected - n_at_level,
        in_flight=n_at_level - totals["due"],
        no_email=totals["no_email"],
        bounced=totals["bounced"],
        no_template=totals["no_template"],
        will_send=totals["due"] - totals["no_email"] - totals["bounced"] - totals["no_template"],
        groups=list(merged.values()),
    )
    preview_order = (
        due.exclude(customer_email="")
        .filter(~bounced_exists(), sales_account_id__in=assigned)
        .select_related("sales_account", "payment_method")
        .order_by("id")
        .first()
        if assigned
        else None
    )
    if preview_order is not None:
        plan.preview_order = preview_order
        template = resolver.template_for(preview_order.sales_account_id, preview_order.effective_language)
        plan.preview_template = template
        try:
            plan.preview = CompiledTemplate(template).render(
                order_context(
                    preview_order,
                    level=level,
                    today=dunning_selectors.local_today(now),
                    language=preview_order.effective_language,
                )
            )
        except Exception as exc:  # a broken template: show the problem instead of a preview
            plan.preview_error = f"{type(exc).__name__}: {exc}"
    return plan


def level_of(order: Order, *, now: datetime.datetime, configs: list[DunningConfig]) -> int | None:
    """The current level of one order (1, 2, 3, 4 = completed, None)."""
    return (
        Order.objects.filter(pk=order.pk)
        .annotate(current_level=level_annotation(now=now, configs=configs))
        .values_list("current_level", flat=True)
        .first()
    )


def run_progress(run_id: int) -> dict[str, int]:
    """Reminders written by a run so far, by status, in one query."""
    rows = Reminder.objects.filter(run_id=run_id).values("status").annotate(n=Count("pk")).order_by()
    return {row["status"]: row["n"] for row in rows}
