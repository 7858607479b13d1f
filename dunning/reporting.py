"""The receivables dashboard's figures (docs/rules/dashboard.md): the aging of open orders by age
bucket and dunning level, the daily snapshots behind the 90-day trend and days sales outstanding,
and each reminder's effect (paid within 7 and 14 days, median days to payment, amount recovered).

Nothing of a rule is repeated here: the level of an order is `selectors.level_q` (`level_terms_q`
of open orders), days overdue are `orders.models.days_overdue_q` (the rule of
`Order.days_overdue`), local dates are `common.dates`. Amounts are order totals, as the
overview's sums, and never summed across currencies.

Live and precomputed: the aging is one live GROUP BY over the open orders (the partial indexes
keep it to the open tenth of the table). The trend, days sales outstanding and the reminder
effectiveness read two summary tables the snapshot task (`dunning.tasks.record_dashboard_snapshot`,
sent by beat) writes: `ReceivablesSnapshot` (one row per day, account and currency) and
`ReminderOutcome` (reminders per sending day, level, template, currency and days to payment),
because their live aggregates read every order and every reminder (see
docs/benchmarks-dashboard.md)."""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import models, transaction
from django.db.models import Case, Count, DurationField, Exists, ExpressionWrapper, F, OuterRef, Q, Sum, Value, When
from django.db.models.functions import TruncDate
from django.utils.translation import gettext_lazy as _

from accounts.models import SalesAccount
from common.dates import end_of_day, local_date, local_midnight, local_today, tz
from orders.models import OPEN, Order, days_overdue_q, payment_terms

from .models import (
    DunningConfig,
    DunningLevel,
    EmailTemplate,
    ReceivablesSnapshot,
    Reminder,
    ReminderOutcome,
    SnapshotDay,
)
from .selectors import NOTHING, level_terms_q

TREND_DAYS = 90
ZERO = Decimal("0.00")


class AgeBucket(models.TextChoices):
    """Days overdue of an open order (today minus its due date), in five buckets; `overdue` (1 day
    or more) is the union of the last four, for the overview's filter."""

    NOT_DUE = "not_due", _("not yet due")
    DAYS_1_30 = "1-30", _("1-30 days overdue")
    DAYS_31_60 = "31-60", _("31-60 days overdue")
    DAYS_61_90 = "61-90", _("61-90 days overdue")
    OVER_90 = "over_90", _("over 90 days overdue")
    OVERDUE = "overdue", _("overdue (1 day or more)")

    @property
    def bounds(self) -> tuple[int | None, int | None]:
        """(at least, at most) days overdue; None: open."""
        return _BOUNDS[self]

    @classmethod
    def buckets(cls) -> tuple[AgeBucket, ...]:
        """The five disjoint buckets, youngest first."""
        return cls.NOT_DUE, cls.DAYS_1_30, cls.DAYS_31_60, cls.DAYS_61_90, cls.OVER_90


_BOUNDS: dict[str, tuple[int | None, int | None]] = {
    "not_due": (None, 0), "1-30": (1, 30), "31-60": (31, 60), "61-90": (61, 90), "over_90": (91, None),
    "overdue": (1, None),
}


def age_bucket_q(bucket: AgeBucket | str, *, today: datetime.date, terms: dict[int, int]) -> Q:
    """Q for "open order's days overdue today fall in `bucket`" (without OPEN)."""
    at_least, at_most = AgeBucket(bucket).bounds
    return days_overdue_q(today=today, terms=terms, at_least=at_least, at_most=at_most)


# --- the aging: live -----------------------------------------------------------------------------


@dataclass
class Cell:
    count: int = 0
    amount: Decimal = ZERO

    def add(self, other: Cell) -> None:
        self.count += other.count
        self.amount += other.amount


@dataclass
class AgingRow:
    """The open orders of one sales account (or all of them: `account_id` None) in one currency."""

    currency: str
    account_id: int | None = None
    account_name: str = ""
    total: Cell = field(default_factory=Cell)
    buckets: dict[AgeBucket, Cell] = field(default_factory=lambda: {b: Cell() for b in AgeBucket.buckets()})
    levels: dict[DunningLevel, Cell] = field(default_factory=lambda: {lvl: Cell() for lvl in DunningLevel})
    flagged: Cell = field(default_factory=Cell)

    def add(self, other: AgingRow) -> None:
        self.total.add(other.total)
        self.flagged.add(other.flagged)
        for bucket in self.buckets:
            self.buckets[bucket].add(other.buckets[bucket])
        for level in self.levels:
            self.levels[level].add(other.levels[level])


@dataclass
class Aging:
    """Per currency: the row of all accounts and the rows of each account (by name)."""

    currencies: dict[str, AgingRow]
    accounts: dict[str, list[AgingRow]]


def receivables_aging(*, now: datetime.datetime, configs: Iterable[DunningConfig], terms: dict[int, int],
                      queryset: models.QuerySet[Order] | None = None) -> Aging:
    """Count and amount of the open orders per sales account and currency: in all, in each age
    bucket, at each dunning level and flagged for cancellation. One query: the open orders grouped
    by currency, account, age bucket (a CASE of `age_bucket_q`), level (a CASE of `level_terms_q`:
    the levels are disjoint, each a number of reminders sent) and flag, with a COUNT and a SUM;
    the cells are added up here. Each order's bucket and level are evaluated once (a CASE stops
    at the first match), where a COUNT and a SUM ... FILTER per figure evaluated every figure's
    condition twice for every order (docs/benchmarks-dashboard.md)."""
    today = local_today(now)
    configs = [c for c in configs if c.is_active]
    bucket = Case(*[When(age_bucket_q(b, today=today, terms=terms), then=Value(b.value)) for b in AgeBucket.buckets()],
                  default=Value(""), output_field=models.CharField())
    level_whens = [When(q, then=Value(lvl.value)) for lvl in DunningLevel
                   if (q := level_terms_q(lvl, now=now, configs=configs)) is not NOTHING]
    level = (Case(*level_whens, default=Value(0), output_field=models.IntegerField()) if level_whens
             else Value(0, output_field=models.IntegerField()))
    qs = Order.objects.all() if queryset is None else queryset
    rows = (qs.filter(OPEN).order_by()
            .annotate(age_bucket=bucket, level=level,
                      flagged=ExpressionWrapper(Q(flagged_for_cancellation_at__isnull=False),
                                                output_field=models.BooleanField()))
            .values("currency", "sales_account_id", "age_bucket", "level", "flagged")
            .annotate(n=Count("pk"), amount=Sum("total")))
    lines: dict[tuple[str, int], AgingRow] = {}
    for row in rows:
        key = (row["currency"], row["sales_account_id"])
        line = lines.get(key)
        if line is None:
            line = lines[key] = AgingRow(currency=row["currency"], account_id=row["sales_account_id"])
        cell = Cell(row["n"], row["amount"] or ZERO)
        line.total.add(cell)
        if row["age_bucket"]:
            line.buckets[AgeBucket(row["age_bucket"])].add(cell)
        if row["level"]:
            line.levels[DunningLevel(row["level"])].add(cell)
        if row["flagged"]:
            line.flagged.add(cell)
    # the accounts' names apart (one small query): in the GROUP BY, the join and the wide name
    # made the grouped rows travel slower than their figures took to compute
    names = dict(SalesAccount.objects.filter(pk__in={line.account_id for line in lines.values()})
                 .values_list("pk", "name")) if lines else {}
    for line in lines.values():
        line.account_name = names.get(line.account_id, "")
    aging = Aging(currencies={}, accounts={})
    for line in sorted(lines.values(), key=lambda r: (r.currency, r.account_name, r.account_id)):
        aging.accounts.setdefault(line.currency, []).append(line)
        aging.currencies.setdefault(line.currency, AgingRow(currency=line.currency)).add(line)
    return aging


# --- the daily snapshot (trend, days sales outstanding) ------------------------------------------


def _state_aggregates(days: list[tuple[datetime.date, datetime.datetime]], terms: dict[int, int]) -> dict[str, Any]:
    """For each (day, cut-off instant): the orders open at the cut-off, of them those overdue on
    the day, and the orders placed on the day before the cut-off, as COUNT/SUM ... FILTER."""
    aggregates: dict[str, Any] = {}
    for i, (day, at) in enumerate(days):
        open_at = (Q(ordered_at__lt=at) & (Q(paid_at__isnull=True) | Q(paid_at__gte=at))
                   & (Q(cancelled_at__isnull=True) | Q(cancelled_at__gte=at)))
        overdue = open_at & days_overdue_q(today=day, terms=terms, at_least=1)
        placed = Q(ordered_at__gte=local_midnight(day), ordered_at__lt=min(at, end_of_day(day)))
        for name, q in (("open", open_at), ("overdue", overdue), ("sales", placed)):
            aggregates[f"{name}_count_{i}"] = Count("pk", filter=q)
            aggregates[f"{name}_amount_{i}"] = Sum("total", filter=q)
    return aggregates


def _snapshot_rows(days: list[tuple[datetime.date, datetime.datetime]], *, terms: dict[int, int],
                   recorded_at: datetime.datetime, backfilled: bool) -> list[ReceivablesSnapshot]:
    """The snapshot rows of `days`, from the orders (one query, one pass over the orders placed
    before the last cut-off). A day's account and currency with nothing open and nothing placed
    gets no row."""
    if not days:
        return []
    latest = max(at for _day, at in days)
    rows = (Order.objects.filter(ordered_at__lt=latest).order_by().values("sales_account_id", "currency")
            .annotate(**_state_aggregates(days, terms)))
    snapshots = []
    for row in rows:
        for i, (day, _at) in enumerate(days):
            figures = {f"{name}_{kind}": row[f"{name}_{kind}_{i}"] or (0 if kind == "count" else ZERO)
                       for name in ("open", "overdue", "sales") for kind in ("count", "amount")}
            if figures["open_count"] or figures["sales_count"]:
                snapshots.append(ReceivablesSnapshot(day=day, sales_account_id=row["sales_account_id"],
                                                     currency=row["currency"], backfilled=backfilled,
                                                     recorded_at=recorded_at, **figures))
    return snapshots


SNAPSHOT_FIELDS = ["open_count", "open_amount", "overdue_count", "overdue_amount", "sales_count", "sales_amount",
                   "backfilled", "recorded_at"]
BACKFILL_CHUNK = 15  # days per query: 90 days are six scans of the orders


@dataclass
class SnapshotResult:
    day: datetime.date
    rows: int
    backfilled_days: int


def snapshots_record(*, now: datetime.datetime, backfill_days: int = TREND_DAYS) -> SnapshotResult:
    """Record today's snapshot (the state at `now`; a second run on the same day replaces the
    first's figures: the unique constraint on day, account and currency) and backfill each of the
    last `backfill_days` days before today that has no row from the order history (the state at
    the end of that day). Recorded days are never rewritten. Safe to run twice, and concurrently:
    the upsert is one statement per row on the constraint."""
    today = local_today(now)
    terms = payment_terms()
    window = [today - datetime.timedelta(days=n) for n in range(backfill_days - 1, 0, -1)]
    have = set(SnapshotDay.objects.filter(day__in=window).values_list("day", flat=True))
    missing = [day for day in window if day not in have]
    backfilled = 0
    for start in range(0, len(missing), BACKFILL_CHUNK):
        chunk = [(day, end_of_day(day)) for day in missing[start:start + BACKFILL_CHUNK]]
        rows = _snapshot_rows(chunk, terms=terms, recorded_at=now, backfilled=True)
        with transaction.atomic():
            # ignore_conflicts: a day another run filled meanwhile keeps its rows
            ReceivablesSnapshot.objects.bulk_create(rows, ignore_conflicts=True)
            SnapshotDay.objects.bulk_create([SnapshotDay(day=day, backfilled=True, recorded_at=now)
                                             for day, _at in chunk], ignore_conflicts=True)
        backfilled += len(chunk)
    rows = _snapshot_rows([(today, now)], terms=terms, recorded_at=now, backfilled=False)
    with transaction.atomic():
        # today's figures replace the earlier run's (an account and currency with nothing open any
        # more loses its row); the upserts on the unique constraints settle a concurrent run
        ReceivablesSnapshot.objects.filter(day=today).delete()
        ReceivablesSnapshot.objects.bulk_create(rows, update_conflicts=True,
                                                unique_fields=["day", "sales_account", "currency"],
                                                update_fields=SNAPSHOT_FIELDS)
        SnapshotDay.objects.bulk_create([SnapshotDay(day=today, recorded_at=now)], update_conflicts=True,
                                        unique_fields=["day"], update_fields=["backfilled", "recorded_at"])
    return SnapshotResult(day=today, rows=len(rows), backfilled_days=backfilled)


@dataclass
class TrendPoint:
    day: datetime.date
    open_count: int | None = None
    open_amount: Decimal | None = None
    overdue_count: int | None = None
    overdue_amount: Decimal | None = None

    @property
    def overdue_share(self) -> Decimal | None:
        """Overdue amount / open amount, in percent (one decimal); None without a snapshot or when
        nothing was open."""
        if not self.open_amount:
            return None
        return (self.overdue_amount * 100 / self.open_amount).quantize(Decimal("0.1"))


@dataclass
class Trend:
    days: list[datetime.date]
    by_currency: dict[str, list[TrendPoint]]
    sales: dict[str, Decimal]  # per currency: ordered over the days with a snapshot
    covered_days: int  # days of the window with a snapshot
    recorded_at: datetime.datetime | None


def receivables_trend(*, today: datetime.date, sales_account_id: int | None = None,
                      days: int = TREND_DAYS) -> Trend:
    """The last `days` days' snapshots (today included) per currency, summed over the accounts
    (or of one account). Two queries. A day without a snapshot is a point without figures."""
    first = today - datetime.timedelta(days=days - 1)
    qs = ReceivablesSnapshot.objects.filter(day__gte=first, day__lte=today)
    if sales_account_id is not None:
        qs = qs.filter(sales_account_id=sales_account_id)
    rows = (qs.order_by().values("day", "currency")
            .annotate(open_count=Sum("open_count"), open_amount=Sum("open_amount"),
                      overdue_count=Sum("overdue_count"), overdue_amount=Sum("overdue_amount"),
                      sales_amount=Sum("sales_amount")))
    calendar = [first + datetime.timedelta(days=n) for n in range(days)]
    recorded = dict(SnapshotDay.objects.filter(day__gte=first, day__lte=today).values_list("day", "recorded_at"))
    by_currency: dict[str, dict[datetime.date, TrendPoint]] = {}
    sales: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for row in rows:
        point = TrendPoint(day=row["day"], open_count=row["open_count"], open_amount=row["open_amount"],
                           overdue_count=row["overdue_count"], overdue_amount=row["overdue_amount"])
        by_currency.setdefault(row["currency"], {})[row["day"]] = point
        sales[row["currency"]] += row["sales_amount"]

    def point(points: dict[datetime.date, TrendPoint], day: datetime.date) -> TrendPoint:
        if day in points:
            return points[day]
        if day in recorded:  # recorded, and nothing of this currency open or ordered that day
            return TrendPoint(day=day, open_count=0, open_amount=ZERO, overdue_count=0, overdue_amount=ZERO)
        return TrendPoint(day=day)

    return Trend(days=calendar,
                 by_currency={cur: [point(points, day) for day in calendar]
                              for cur, points in sorted(by_currency.items())},
                 sales=dict(sales), covered_days=len(recorded),
                 recorded_at=max(recorded.values(), default=None))


def days_sales_outstanding(open_amount: Decimal, *, sales: Decimal, days: int) -> Decimal | None:
    """DSO = open receivables / amount ordered over `days` days x `days` (one decimal); None when
    nothing was ordered."""
    if not sales or days <= 0:
        return None
    return (open_amount * days / sales).quantize(Decimal("0.1"))


# --- reminder effectiveness ----------------------------------------------------------------------

SENT_STATUSES = (Reminder.Status.SENT, Reminder.Status.DELIVERED, Reminder.Status.BOUNCED,
                 Reminder.Status.COMPLAINED)


def reminder_outcomes_rebuild(*, now: datetime.datetime) -> int:
    """Rebuild `ReminderOutcome` from every sent reminder and its order's payment date. A payment
    counts for the order's last reminder sent before it (at or before `paid_at`): the reminder that
    got the order paid; earlier reminders of that order count as not paid after them. Days to
    payment are local dates (payment date minus sending date). One pass over the sent reminders,
    ordered by order; one transaction replaces the table."""
    rows = (Reminder.objects.filter(status__in=SENT_STATUSES, sent_at__isnull=False, sent_at__lte=now)
            .order_by("order_id", "sent_at", "level")
            .values_list("order_id", "level", "template_id", "sent_at", "order__paid_at", "order__currency",
                         "order__total"))
    counts: dict[tuple, list] = {}

    def flush(group: list[tuple]) -> None:
        paid_at = group[0][4]
        paid_by = None
        if paid_at is not None and paid_at <= now:
            before = [r for r in group if r[3] <= paid_at]
            paid_by = before[-1] if before else None
        for r in group:
            days = (local_date(paid_at) - local_date(r[3])).days if r is paid_by else None
            key = (local_date(r[3]), r[1], r[2], r[5], days)
            entry = counts.setdefault(key, [0, ZERO])
            entry[0] += 1
            entry[1] += r[6]

    group: list[tuple] = []
    for row in rows.iterator(chunk_size=5000):
        if group and group[0][0] != row[0]:
            flush(group)
            group = []
        group.append(row)
    if group:
        flush(group)
    outcomes = [ReminderOutcome(sent_on=k[0], level=k[1], template_id=k[2], currency=k[3], days_to_payment=k[4],
                                reminders=v[0], amount=v[1]) for k, v in counts.items()]
    with transaction.atomic():
        ReminderOutcome.objects.all().delete()
        ReminderOutcome.objects.bulk_create(outcomes, batch_size=2000)
    return len(outcomes)


PAID_WITHIN = (7, 14)


def reminded_orders_q(*, now: datetime.datetime, level: int | None = None, template_id: int | None = None,
                      without_template: bool = False, start: datetime.date | None = None,
                      end: datetime.date | None = None, paid_within: int | str | None = None) -> Q:
    """Q for the orders behind a reminder-effect figure: those with a reminder sent (a status of
    SENT_STATUSES, sent at or before `now`) at `level`, with `template_id` (or, `without_template`,
    whose template was deleted), on a local date from `start` to `end`. With `paid_within`: only
    those whose payment counts for that reminder, by the rule `reminder_outcomes_rebuild` counts
    (the order's last reminder sent at or before `paid_at`, ties by level; paid at or before
    `now`); "any": paid at all after it, 7 or 14: paid within that many days (local dates) and
    sent at least that many days before today (its window is over), as `Effect.paid_7`/`paid_14`.
    One reminder of a level per order (`reminder_one_live_per_order_level`): the orders are as
    many as the reminders. The overview's reminder filters call it."""
    sent = Reminder.objects.filter(order=OuterRef("pk"), status__in=SENT_STATUSES, sent_at__isnull=False,
                                   sent_at__lte=now)
    if level is not None:
        sent = sent.filter(level=level)
    if without_template:
        sent = sent.filter(template__isnull=True)
    elif template_id is not None:
        sent = sent.filter(template_id=template_id)
    if start is not None:
        sent = sent.filter(sent_at__gte=local_midnight(start))
    if end is not None:
        sent = sent.filter(sent_at__lt=end_of_day(end))
    if paid_within is not None:
        # a later reminder before the payment takes the payment (as the rebuild's `before[-1]`)
        later = Reminder.objects.filter(
            Q(sent_at__gt=OuterRef("sent_at")) | Q(sent_at=OuterRef("sent_at"), level__gt=OuterRef("level")),
            order=OuterRef("order"), status__in=SENT_STATUSES, sent_at__isnull=False,
            sent_at__lte=OuterRef("order__paid_at"))
        sent = sent.filter(order__paid_at__isnull=False, order__paid_at__lte=now,
                           sent_at__lte=F("order__paid_at")).exclude(Exists(later))
        if paid_within != "any":
            days = int(paid_within)
            sent = (sent.filter(sent_at__lt=end_of_day(local_today(now) - datetime.timedelta(days=days)))
                    .annotate(days_to_payment=ExpressionWrapper(
                        TruncDate("order__paid_at", tzinfo=tz()) - TruncDate("sent_at", tzinfo=tz()),
                        output_field=DurationField()))
                    .filter(days_to_payment__lte=datetime.timedelta(days=days)))
    return Q(Exists(sent))


def median_of_counts(counts: dict[int, int]) -> Decimal | None:
    """The median of a multiset given as value -> how often (the mean of the two middle values
    when the number is even)."""
    n = sum(counts.values())
    if not n:
        return None
    ordered = sorted(counts.items())

    def nth(k: int) -> int:  # the k-th smallest value, 0-based
        seen = 0
        for value, times in ordered:
            seen += times
            if k < seen:
                return value
        raise IndexError(k)

    if n % 2:
        return Decimal(nth(n // 2))
    return (Decimal(nth(n // 2 - 1)) + Decimal(nth(n // 2))) / 2


def _add(sums: dict[str, Decimal], currency: str, amount: Decimal) -> None:
    sums[currency] = sums.get(currency, ZERO) + amount


@dataclass
class Effect:
    """The reminders of one level (and template) sent in the period, and what followed them."""

    level: int
    template_id: int | None = None
    template_name: str = ""
    sent: int = 0
    closed_7: int = 0  # sent at least 7 days ago: their 7-day window is over
    paid_7: int = 0
    closed_14: int = 0
    paid_14: int = 0
    paid: int = 0
    days: dict[int, int] = field(default_factory=dict)
    recovered: dict[str, Decimal] = field(default_factory=dict)  # per currency
    # the order totals behind `sent`, `paid_7` and `paid_14`, per currency (their overview links'
    # sums)
    sent_amounts: dict[str, Decimal] = field(default_factory=dict)
    paid_7_amounts: dict[str, Decimal] = field(default_factory=dict)
    paid_14_amounts: dict[str, Decimal] = field(default_factory=dict)

    @staticmethod
    def _share(part: int, whole: int) -> Decimal | None:
        return (Decimal(part) * 100 / whole).quantize(Decimal("0.1")) if whole else None

    @property
    def share_7(self) -> Decimal | None:
        return self._share(self.paid_7, self.closed_7)

    @property
    def share_14(self) -> Decimal | None:
        return self._share(self.paid_14, self.closed_14)

    @property
    def median_days(self) -> Decimal | None:
        return median_of_counts(self.days)

    @property
    def recovered_sums(self) -> list[tuple[str, Decimal]]:
        return sorted(self.recovered.items())

    def add(self, *, days: int | None, n: int, closed_7: int, closed_14: int, amount: Decimal,
            closed_7_amount: Decimal, closed_14_amount: Decimal, currency: str) -> None:
        """`n` reminders (orders of `amount`) followed by a payment after `days` (None: none), of
        them `closed_7` / `closed_14` sent at least 7 / 14 days ago."""
        self.sent += n
        self.closed_7 += closed_7
        self.closed_14 += closed_14
        _add(self.sent_amounts, currency, amount)
        if days is not None:
            if days <= 7:
                self.paid_7 += closed_7
                if closed_7:
                    _add(self.paid_7_amounts, currency, closed_7_amount)
            if days <= 14:
                self.paid_14 += closed_14
                if closed_14:
                    _add(self.paid_14_amounts, currency, closed_14_amount)
            self.paid += n
            self.days[days] = self.days.get(days, 0) + n
            self.recovered[currency] = self.recovered.get(currency, ZERO) + amount


@dataclass
class Effectiveness:
    by_level: list[Effect]
    by_template: list[Effect]


def reminder_effectiveness(*, start: datetime.date, end: datetime.date, today: datetime.date) -> Effectiveness:
    """Per level and per (level, template): the reminders sent from `start` to `end` (local dates,
    both included), how many of those whose window is over (sent at least 7 / 14 days before
    `today`) were paid within 7 / 14 days, the median days to payment of those paid, and the
    amount recovered per currency. Reads `ReminderOutcome` (one query with the templates' names)."""
    week_ago, fortnight_ago = today - datetime.timedelta(days=7), today - datetime.timedelta(days=14)
    rows = (ReminderOutcome.objects.filter(sent_on__gte=start, sent_on__lte=end).order_by()
            .values("level", "template_id", "currency", "days_to_payment")
            .annotate(n=Sum("reminders"), sum_amount=Sum("amount"),
                      closed_7=Sum("reminders", filter=Q(sent_on__lte=week_ago), default=0),
                      closed_14=Sum("reminders", filter=Q(sent_on__lte=fortnight_ago), default=0),
                      closed_7_amount=Sum("amount", filter=Q(sent_on__lte=week_ago), default=ZERO),
                      closed_14_amount=Sum("amount", filter=Q(sent_on__lte=fortnight_ago), default=ZERO)))
    levels = {level: Effect(level=level) for level in DunningLevel.sendable()}
    templates: dict[tuple[int, int | None], Effect] = {}
    for row in rows:
        key = (row["level"], row["template_id"])
        effect = templates.get(key)
        if effect is None:
            effect = templates[key] = Effect(level=row["level"], template_id=row["template_id"])
        kwargs = {"days": row["days_to_payment"], "n": row["n"], "closed_7": row["closed_7"],
                  "closed_14": row["closed_14"], "amount": row["sum_amount"], "currency": row["currency"],
                  "closed_7_amount": row["closed_7_amount"], "closed_14_amount": row["closed_14_amount"]}
        effect.add(**kwargs)
        levels[DunningLevel(row["level"])].add(**kwargs)
    names = {pk: f"{name} ({language})" for pk, name, language in
             EmailTemplate.objects.filter(pk__in=[t for _lvl, t in templates if t is not None])
             .values_list("pk", "name", "language")} if templates else {}
    for (_level, template_id), effect in templates.items():
        effect.template_name = names.get(template_id, "")
    return Effectiveness(by_level=list(levels.values()),
                         by_template=sorted(templates.values(), key=lambda e: (e.level, e.template_name,
                                                                                 e.template_id or 0)))
