"""Reads behind the back-office pages: the overview rows with their badges, the capped count,
the level counts and what a Notify would do. Levels and the send decision (why an order gets no
reminder) always come from dunning.selectors: nothing of the rule is repeated here."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.core.paginator import Paginator
from django.db import connection, connections
from django.db.models import Count, Exists, F, OuterRef, QuerySet, Sum, Value, Window
from django.db.models.functions import RowNumber
from django.utils.functional import cached_property

from accounts.models import SalesAccount
from common.compiled import CompiledRows
from dunning import selectors as dunning_selectors
from dunning.claim import CENT, Claim
from dunning.models import DunningConfig, DunningLevel, EmailTemplate, Reminder
from dunning.selectors import (
    Skip,
    bounced_exists,
    delivery_checks,
    due_checks,
    first_deadline_subquery,
    level_annotation,
    level_day_terms,
    level_q,
    level_terms_q,
    pair_blocks,
    skip_reason,
    stale_after,
)
from dunning.services import TemplateResolver
from dunning.templating import RenderedEmail, render_reminder
from orders import open_totals
from orders.models import OPEN, Order, PaymentMethod
from orders.services import BulkRule
from payments.selectors import with_paid_amount

from .filters import overview_orders, search_q

COUNT_CAP = 10_000
NOTIFY_SAMPLE = 50  # orders named on the Notify confirmation, each list; the rest via the overview


def open_orders(*, now: datetime.datetime, configs: Iterable[DunningConfig],
                with_level: bool = True) -> QuerySet[Order]:
    """All open orders with what the overview shows of their account and payment method and
    their current level (NULL when in none; `with_level` False: without it)."""
    return overview_orders(now=now, configs=configs, with_level=with_level)


def closed_orders_matching(search: str) -> QuerySet[Order]:
    """Paid and cancelled orders whose number, customer or e-mail contains `search`, newest first:
    the overview's search shows them apart from the open ones, so a clerk can answer "I have
    paid" on the phone."""
    return (Order.objects.exclude(OPEN).filter(search_q(search))
            .select_related("sales_account", "payment_method").order_by("-ordered_at", "-id"))


def with_badges(qs: QuerySet[Order], *, now: datetime.datetime) -> QuerySet[Order]:
    """Badge flags as EXISTS subqueries, evaluated only for the rows of the page."""
    return _with_badges(qs, stale_before=now - stale_after())


def _with_badges(qs: QuerySet[Order], *, stale_before: datetime.datetime) -> QuerySet[Order]:
    reminders = Reminder.objects.filter(order=OuterRef("pk"))
    pending = reminders.filter(status=Reminder.Status.PENDING)
    return qs.annotate(
        # the next level's reminder failed and none of that level went out since
        last_send_failed=Exists(reminders.filter(status=Reminder.Status.FAILED, level=OuterRef("reminders_sent") + 1)),
        in_flight=Exists(pending),
        outcome_unknown=Exists(pending.filter(created_at__lt=stale_before)),
        address_bounced=bounced_exists(),
    )


PAGE_ROWS_MAX = 100  # ids of one page's rows query (the overview's pages hold 50)


def _page_rows_query(ids: list[int], stale_before: datetime.datetime) -> QuerySet[Order]:
    return (with_paid_amount(_with_badges(Order.objects.filter(pk__in=ids), stale_before=stale_before))
            .annotate(first_deadline=first_deadline_subquery()).order_by())


# the rows' query has the same shape on every page: built and compiled once per connection (its
# four EXISTS and two subqueries were a fifth of the page's Python time), run with the page's ids
# and instant (common.compiled)
_PAGE_ROWS = CompiledRows(_page_rows_query, ids=[-(10**15) - i for i in range(PAGE_ROWS_MAX)],
                          stale_before=datetime.datetime(2000, 1, 1, 0, 0, 0, 424242, tzinfo=datetime.UTC))


def page_rows(ids: list[int], *, now: datetime.datetime, accounts: Mapping[int, SalesAccount],
              methods: Mapping[int, PaymentMethod]) -> list[Order]:
    """The overview's rows of `ids` (unordered) with what the page shows of them, in one query: the
    badges (`with_badges`), the first deadline and what payments cover (the "partly paid" label)
    are subqueries of it. Each row's sales account and payment method are taken from `accounts`
    and `methods` (the filter's select boxes read them all anyway) instead of two joins and two
    model instances per row; one missing there (created since) is read as usual."""
    rows = _PAGE_ROWS.instances(ids=ids, stale_before=now - stale_after()) if ids else []
    for order in rows:
        account = accounts.get(order.sales_account_id)
        if account is not None:
            order.sales_account = account
        method = methods.get(order.payment_method_id)
        if method is not None:
            order.payment_method = method
    return rows


class CappedPaginator(Paginator):
    """Counts at most COUNT_CAP rows (SELECT COUNT(*) FROM (... LIMIT cap+1)) instead of a full
    COUNT(*) over a million orders; `is_capped` tells the page to say "more than".

    `list_columns`: expressions of the whole list (not of a row: an uncorrelated EXISTS, say) read as
    columns of the page's ids query instead of a query each: `list_values` after `page()`, None
    each when the page is empty (no query ran: the list is empty).

    `known_count`: the exact count when the caller has it already (a level-filtered list is
    exactly its level tab, an unfiltered one all of them, counted by `level_totals`), so no count
    query runs.

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
        list_columns: Mapping[str, Any] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(object_list, per_page, *args, **kwargs)
        self.known_count = known_count
        self.rows = rows
        self.list_columns = dict(list_columns or {})
        self.list_values: dict[str, Any] = dict.fromkeys(self.list_columns)

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
        ids = []
        if top > bottom and self.list_columns:
            names = list(self.list_columns)
            rows = list(self.object_list.annotate(**self.list_columns).values_list("pk", *names)[bottom:top])
            ids = [row[0] for row in rows]
            if rows:
                self.list_values = dict(zip(names, rows[0][1:], strict=True))
        elif top > bottom:
            ids = list(self.object_list.values_list("pk", flat=True)[bottom:top])
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


def level_counts(qs: QuerySet[Order], *, now: datetime.datetime,
                 configs: list[DunningConfig]) -> dict[DunningLevel, int]:
    """How many orders of `qs` are at each level, in one query of one COUNT subquery per level.

    Each count is an index-only scan of one range of order_open_sent_date_idx (`level_q` states
    the number of reminders sent outside its OR over configs). One COUNT(...) FILTER per level
    over all open orders instead read every open order's row and tested it against all four
    levels (85 ms at a million orders)."""
    active = [c for c in configs if c.is_active]
    if not active:
        return dict.fromkeys(DunningLevel, 0)
    counts = count_each(*(qs.filter(level_q(level, now=now, configs=active)) for level in DunningLevel))
    return dict(zip(DunningLevel, counts, strict=True))


Sums = list[tuple[str, Decimal]]  # (currency, amount outstanding), by currency


@dataclass
class LevelTotals:
    """How many orders and how much money per currency: of all of a queryset and of each level's
    part of it."""

    counts: dict[DunningLevel, int]
    sums: dict[DunningLevel, Sums]
    all_count: int = 0
    all_sums: Sums = field(default_factory=list)


def level_totals(qs: QuerySet[Order], *, now: datetime.datetime, configs: list[DunningConfig],
                 open_only: bool = True, where: dict[str, Any] | None = None) -> LevelTotals:
    """The counts and the amounts outstanding per currency of the open orders of `qs` and of each
    level, in one query: `GROUP BY currency` with a COUNT and a SUM, and a COUNT and a SUM ...
    FILTER (`level_terms_q`) per level. A currency with nothing at a level is left out of that
    level's sums.

    It reads only index entries (order_open_sent_date_idx holds every column the rule, the amount
    and the currency need; the FILTERs leave out "open", which the index does not hold but its
    predicate is). Before, the same query read each open order's row from the table (no currency
    in the index, paid_at and cancelled_at in each FILTER): 117-137 ms at a million orders, 100,000
    of them open (docs/performance-notes.md).

    `open_only` False (the overview widened to closed orders, `?state=`): the count and the sums of
    all the orders of `qs`, and per level of its open ones (`level_q`).

    `where`: `qs` is the open orders with these column values (the overview's filters that the
    open orders' totals carry: `OpenOrderFilter.totals_where`): then the totals are read from
    those (`open_totals_by_level`) when the configs allow, else from `qs` as above."""
    if open_only and where is not None:
        totals = open_totals_by_level(now=now, configs=configs, where=where)
        if totals is not None:
            return totals
    active = [c for c in configs if c.is_active]
    aggregates: dict[str, Any] = {"n_all": Count("*"), "sum_all": Sum("total")}
    if active:
        for level in DunningLevel:
            at_level = (level_terms_q if open_only else level_q)(level, now=now, configs=active)
            aggregates[f"n_{level.value}"] = Count("pk", filter=at_level)
            aggregates[f"sum_{level.value}"] = Sum("total", filter=at_level)
    rows = ((qs.filter(OPEN) if open_only else qs).order_by().values("currency").annotate(**aggregates)
            .order_by("currency"))
    totals = LevelTotals(counts=dict.fromkeys(DunningLevel, 0), sums={level: [] for level in DunningLevel})
    for row in rows:
        totals.all_count += row["n_all"]
        if row["n_all"]:
            totals.all_sums.append((row["currency"], row["sum_all"]))
        for level in DunningLevel:
            n = row.get(f"n_{level.value}") or 0
            totals.counts[level] += n
            if n:
                totals.sums[level].append((row["currency"], row[f"sum_{level.value}"]))
    return totals


TOTALS_COLUMNS = ("sales_account_id", "payment_method_id", "dunning_blocked", "currency")


def open_totals_by_level(*, now: datetime.datetime, configs: list[DunningConfig],
                         where: dict[str, Any]) -> LevelTotals | None:
    """`level_totals` of the open orders with the column values `where` (TOTALS_COLUMNS), read from
    the open orders' totals the database keeps (orders.open_totals), in one query that reads a few
    hundred rows whatever the number of orders, and no visibility map to depend on. None when the
    totals cannot answer (a config with a minimum amount or a first order day, the triggers not
    installed for TIME_ZONE): the caller reads the orders instead.

    Each level's orders are counted as (a) the group rows of its reminders sent and its configs'
    (account, method) pairs, less (b) the day rows of those pairs that miss the level's days, which
    can only be among the newest days (ordered after the earliest cut-off of the level, or reminded
    after it: an index range each), plus (c) the deltas not folded yet, each given its level by
    the rule in local days (`dunning.selectors.level_day_terms`). The count of all open orders is
    (a) plus (c)."""
    if not open_totals.usable():
        return None
    active = [c for c in configs if c.is_active]
    day = (lambda d: d) if connection.vendor == "postgresql" else (lambda d: d.isoformat())
    base_whens, level_whens, level_params, ranges, range_params = [], [], [], [], []
    for level in DunningLevel:
        terms = level_day_terms(level, now=now, configs=active, clamp_days=open_totals.CLAMP_DAYS)
        if terms is None:
            return None
        if not terms:
            continue
        sent = int(level.reminders_sent)
        parts = []
        for (ordered_by, reminded_by), pairs in sorted(terms.items(), key=lambda item: sorted(item[1])):
            conditions = [_pairs_sql(pairs)]
            if ordered_by is not None:
                conditions.append("ordered_day <= %s")
                level_params.append(day(ordered_by))
            if reminded_by is not None:
                conditions.append("reminded_day <= %s")
                level_params.append(day(reminded_by))
            parts.append("(" + ") AND (".join(conditions) + ")")
        every_pair = _pairs_sql(set().union(*terms.values()))
        base_whens.append(f"WHEN reminders_sent = {sent} THEN CASE WHEN {every_pair} THEN {int(level.value)} END")
        level_whens.append(f"WHEN reminders_sent = {sent} THEN CASE WHEN ({') OR ('.join(parts)}) "
                           f"THEN {int(level.value)} END")
        # the day rows that may miss the level: ordered after its earliest cut-off, or reminded after it
        ordered_cuts = [o for o, _ in terms if o is not None]
        reminded_cuts = [r for _, r in terms if r is not None]
        if ordered_cuts:
            ranges.append(f"(reminders_sent = {sent} AND ordered_day > %s)")
            range_params.append(day(min(ordered_cuts)))
        if reminded_cuts:
            ranges.append(f"(reminders_sent = {sent} AND reminded_day > %s)")
            range_params.append(day(min(reminded_cuts)))
    base_sql = f"CASE WHEN dunning_blocked THEN NULL {' '.join(base_whens)} END" if base_whens else "NULL"
    level_sql = f"CASE WHEN dunning_blocked THEN NULL {' '.join(level_whens)} END" if level_whens else "NULL"
    filters, filter_params = ["1 = 1"], []
    for column, value in where.items():
        if column not in TOTALS_COLUMNS:
            raise ValueError(f"the open orders' totals have no column {column!r}")
        filters.append(f"{column} = %s")
        filter_params.append(value)
    filter_sql = " AND ".join(filters)
    group_day, params = day(open_totals.GROUP_DAY), []
    # (a) the group rows: all open orders, and each level's orders if none missed its days
    sql = [f"SELECT currency, {base_sql} AS level, n, amount, 1 AS all_, 0 AS delta "  # noqa: S608
           f"FROM {open_totals.TOTALS} WHERE reminders_sent IN (0, 1, 2, 3) AND ordered_day = %s AND {filter_sql}"]
    params += [group_day, *filter_params]
    if ranges:
        # (b) less the day rows that miss their level's days
        sql.append(f"SELECT currency, {base_sql} AS level, -n, -amount, 0, 0 FROM {open_totals.TOTALS} "  # noqa: S608
                   f"WHERE ({' OR '.join(ranges)}) AND NOT dunning_blocked AND ordered_day <> %s "
                   f"AND ({level_sql}) IS NULL AND {filter_sql}")
        params += [*range_params, group_day, *level_params, *filter_params]
    # (c) the deltas not folded yet
    sql.append(f"SELECT currency, {level_sql} AS level, n, amount, 1, 1 FROM {open_totals.DELTAS} "  # noqa: S608
               f"WHERE {filter_sql}")
    params += [*level_params, *filter_params]
    query = (f"SELECT currency, level, all_, SUM(n), SUM(amount), SUM(delta) FROM ({' UNION ALL '.join(sql)}) "  # noqa: S608
             "AS parts GROUP BY currency, level, all_ ORDER BY currency")
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        rows = cursor.fetchall()
    totals = LevelTotals(counts=dict.fromkeys(DunningLevel, 0), sums={level: [] for level in DunningLevel})
    all_sums: dict[str, list] = {}
    level_sums: dict[DunningLevel, dict[str, list]] = {level: {} for level in DunningLevel}
    deltas = 0
    for currency, value, in_all, n, amount, delta_rows in rows:
        n, amount = int(n or 0), _money(amount)
        deltas += int(delta_rows or 0)
        if in_all:
            totals.all_count += n
            cell = all_sums.setdefault(currency, [0, Decimal(0)])
            cell[0] += n
            cell[1] += amount
        if value is not None:
            level = DunningLevel.coerce(value)
            totals.counts[level] += n
            cell = level_sums[level].setdefault(currency, [0, Decimal(0)])
            cell[0] += n
            cell[1] += amount
    totals.all_sums = [(currency, amount) for currency, (n, amount) in sorted(all_sums.items()) if n]
    for level in DunningLevel:
        totals.sums[level] = [(currency, amount) for currency, (n, amount) in sorted(level_sums[level].items()) if n]
    if deltas > open_totals.FOLD_AFTER:
        open_totals.fold()
    return totals


def _pairs_sql(pairs: set[tuple[int, int]]) -> str:
    """(sales account, payment method) in `pairs` as SQL of the totals' columns, in the blocks of
    `pair_blocks` (the ids are integers from the configs, written into the statement)."""
    return " OR ".join(
        f"(sales_account_id IN ({', '.join(str(int(a)) for a in accounts)}) "
        f"AND payment_method_id IN ({', '.join(str(int(m)) for m in methods)}))"
        for accounts, methods in pair_blocks(pairs))


def _money(value) -> Decimal:
    if value is None:
        return Decimal("0.00")
    return (value if isinstance(value, Decimal) else Decimal(str(value))).quantize(CENT)


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
    preview_claim: Claim | None = None  # the claim the previewed reminder states
    preview_deadline: datetime.date | None = None
    # the first NOTIFY_SAMPLE orders by number that would get the reminder (each with `.template`)
    # and that would be skipped (each with `.skip_reason`)
    send_sample: list[Order] = field(default_factory=list)
    skip_sample: list[Order] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return self.not_at_level + self.in_flight + self.no_email + self.bounced + self.no_template


def notify_plan(
    selection: QuerySet[Order], *, level: int, now: datetime.datetime, configs: list[DunningConfig]
) -> NotifyPlan:
    """What a Notify of `selection` at `level` would do, in three queries whatever the size
    of the selection: each order's skip reason from the engine's own checks (dunning.selectors
    `due_checks` + `delivery_checks`, first failing check wins, NULL = it would be sent), counted
    per (reason, account, language); the first NOTIFY_SAMPLE orders by number that would be sent
    (with the template each gets) and that would be skipped (with the reason); and a rendered
    preview of the first order that would be sent."""
    resolver = TemplateResolver(level)
    checks = due_checks(level, now=now, configs=configs, automatic=False) + delivery_checks(
        accounts_with_template=resolver.accounts
    )
    decided = selection.order_by().annotate(skip_reason=skip_reason(checks))
    rows = (
        decided.values("skip_reason", "sales_account_id", "sales_account__name", "sales_account__language", "language")
        .annotate(n=Count("pk"))
        .order_by("sales_account__name", "language")
    )
    by_reason: dict[str, int] = dict.fromkeys(Skip.values, 0)
    merged: dict[tuple[int, str], TemplateGroup] = {}
    selected = will_send = 0
    for row in rows:
        selected += row["n"]
        if row["skip_reason"]:
            by_reason[row["skip_reason"]] += row["n"]
        else:
            will_send += row["n"]
        if row["skip_reason"] not in (None, Skip.NO_TEMPLATE):
            continue
        # a group per account and language that would be sent but for the template: the page
        # shows which template each group gets, and which groups have none
        account_id = row["sales_account_id"]
        language = row["language"] or row["sales_account__language"]
        key = (account_id, language)
        if key in merged:
            merged[key].count += row["n"]
            continue
        merged[key] = TemplateGroup(
            account_name=row["sales_account__name"],
            language=language,
            template=resolver.template_for(account_id, language),
            count=row["n"],
        )
    plan = NotifyPlan(
        level=level,
        selected=selected,
        not_at_level=by_reason[Skip.NOT_AT_LEVEL],
        in_flight=by_reason[Skip.IN_FLIGHT],
        no_email=by_reason[Skip.NO_EMAIL],
        bounced=by_reason[Skip.BOUNCED],
        no_template=by_reason[Skip.NO_TEMPLATE],
        will_send=will_send,
        groups=list(merged.values()),
    )
    # the first orders by number of each reason (and of "sent"), in one query whatever the data
    first = Window(RowNumber(), partition_by=[F("skip_reason")], order_by=[F("number").asc(), F("id").asc()])
    sample = sorted(decided.select_related("sales_account").annotate(nth=first).filter(nth__lte=NOTIFY_SAMPLE),
                    key=lambda order: (order.number, order.pk))
    plan.send_sample = [order for order in sample if order.skip_reason is None][:NOTIFY_SAMPLE]
    plan.skip_sample = [order for order in sample if order.skip_reason is not None][:NOTIFY_SAMPLE]
    for order in plan.send_sample:
        order.template = resolver.template_for(order.sales_account_id, order.effective_language)
    if will_send:
        preview_order = (
            decided.filter(skip_reason__isnull=True).select_related("sales_account", "payment_method").order_by("id")
        ).first()
        if preview_order is not None:
            plan.preview_order = preview_order
            template = resolver.template_for(preview_order.sales_account_id, preview_order.effective_language)
            plan.preview_template = template
            try:
                owed, deadline = dunning_selectors.order_claim_on(preview_order, now=now, level=level,
                                                                  configs=configs)
                plan.preview_claim, plan.preview_deadline = owed, deadline
                plan.preview = render_reminder(resolver.compiled(template), preview_order, level=level, now=now,
                                               claim=owed, deadline=deadline)
            except Exception as exc:  # a broken template: show the problem instead of a preview
                plan.preview_error = f"{type(exc).__name__}: {exc}"
    return plan


def level_of(order: Order, *, now: datetime.datetime, configs: list[DunningConfig]) -> int | None:
    """The current level of one order (a DunningLevel value), or None."""
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


# --- what a bulk action would do ------------------------------------------------------------------

BULK_SAMPLE = 50  # orders named on a bulk confirmation, each list; the rest via the overview


@dataclass
class BulkPreview:
    """What a bulk action would do to a selection: how many orders it changes, how many it skips
    and why (BulkSkip code -> count), and the first orders of each kind by number."""

    will_change: int
    skip_counts: dict[str, int]
    change_sample: list[Order]
    skip_sample: list[Order]  # each with .skip_reason

    @property
    def skipped(self) -> int:
        return sum(self.skip_counts.values())

    @property
    def selected(self) -> int:
        return self.will_change + self.skipped


def bulk_preview(qs: QuerySet[Order], rule: BulkRule, *, sample: int = BULK_SAMPLE) -> BulkPreview:
    """Ask the action's own rule (orders.services.RULES) about each order of `qs`: three queries,
    whatever the selection (the counts per reason, then each sample)."""
    annotated = qs.annotate(skip_reason=rule.skip_reason_expression())
    counts = {row["skip_reason"]: row["n"]
              for row in annotated.order_by().values("skip_reason").annotate(n=Count("pk"))}
    rows = annotated.select_related("sales_account", "payment_method").order_by("number", "id")
    will_change = counts.pop("", 0)
    return BulkPreview(
        will_change=will_change,
        skip_counts=counts,
        change_sample=list(rows.filter(skip_reason="")[:sample]) if will_change else [],
        skip_sample=list(rows.exclude(skip_reason="")[:sample]) if counts else [],
    )
