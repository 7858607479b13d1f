"""Reads of the dunning domain. THE LEVEL RULE lives here, in `level_q`: the overview filter, the
Notify action and the automatic job all ask it, so they cannot disagree.

The rule (docs/rules/dunning-levels.md) is stated in calendar days in TIME_ZONE. Each active
config fixes the payment term and the level days, so "days overdue >= N" becomes, per config, a
plain comparison `ordered_at < <local midnight of a computed day>`: exact across daylight-saving
changes (the midnight is computed with zoneinfo), the same on SQLite and PostgreSQL, and able to
use the partial index on open orders. The loop is over configs (a handful), never over orders."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from functools import reduce
from operator import or_
from typing import Literal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Case, Count, Exists, IntegerField, OuterRef, Q, QuerySet, Value, When

from orders.models import OPEN, Order

from .models import MAX_SEND_ATTEMPTS, DunningConfig, Reminder, ReminderAssignment

Level = Literal[1, 2, 3, "completed"]
COMPLETED: Level = "completed"
ALL_LEVELS: tuple[Level, ...] = (1, 2, 3, COMPLETED)
NOTHING = Q(pk__in=[])
REMINDERS_SENT_AT: dict[Level, int] = {1: 0, 2: 1, 3: 2, COMPLETED: 3}


def tz() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def local_today(now: datetime.datetime) -> datetime.date:
    return now.astimezone(tz()).date()


def local_midnight(day: datetime.date) -> datetime.datetime:
    """The first instant of a calendar day in TIME_ZONE, as an aware datetime."""
    return datetime.datetime.combine(day, datetime.time.min, tzinfo=tz())


def _before_day_after(day: datetime.date) -> datetime.datetime:
    """`x < _before_day_after(d)` is `local date of x <= d`."""
    return local_midnight(day + datetime.timedelta(days=1))


def active_configs(*, sales_account_id: int | None = None) -> list[DunningConfig]:
    qs = DunningConfig.objects.filter(is_active=True).select_related("payment_method", "sales_account")
    if sales_account_id is not None:
        qs = qs.filter(sales_account_id=sales_account_id)
    return list(qs)


def _config_base_q(config: DunningConfig) -> Q:
    q = Q(sales_account_id=config.sales_account_id, payment_method_id=config.payment_method_id,
          total__gte=config.minimum_amount)
    if config.only_orders_since:
        q &= Q(ordered_at__gte=local_midnight(config.only_orders_since))
    return q


def _config_level_q(config: DunningConfig, level: Level, today: datetime.date) -> Q:
    base = _config_base_q(config)
    if level == COMPLETED:
        return base & Q(reminders_sent=REMINDERS_SENT_AT[COMPLETED])
    # days overdue = today - (local order date + term) >= level days
    # <=> local order date <= today - level days - term
    overdue_days = config.level_days(level) + config.payment_method.payment_term_days
    latest_order_day = today - datetime.timedelta(days=overdue_days)
    q = base & Q(reminders_sent=REMINDERS_SENT_AT[level], ordered_at__lt=_before_day_after(latest_order_day))
    if level > 1:
        # today - local date of the last reminder >= min days between reminders
        latest_reminder_day = today - datetime.timedelta(days=config.min_days_between_reminders)
        q &= Q(last_reminder_at__lt=_before_day_after(latest_reminder_day))
    return q


def level_q(level: Level, *, now: datetime.datetime, configs: Iterable[DunningConfig]) -> Q:
    """Q for "open order at `level`" (1, 2, 3 or "completed") at `now` under the active `configs`."""
    if level not in ALL_LEVELS:
        raise ValueError(f"unknown dunning level {level!r}")
    today = local_today(now)
    parts = [_config_level_q(c, level, today) for c in configs if c.is_active]
    if not parts:
        return NOTHING
    # Every part already requires this number of reminders sent; saying it once outside the OR
    # lets the database read one range of order_open_sent_date_idx (SQLite does not hoist it).
    sent = Q(reminders_sent=REMINDERS_SENT_AT[level])
    return OPEN & Q(dunning_blocked=False) & sent & reduce(or_, parts)


def orders_at_level(level: Level, *, now: datetime.datetime, configs: Iterable[DunningConfig] | None = None,
                    queryset: QuerySet[Order] | None = None) -> QuerySet[Order]:
    configs = active_configs() if configs is None else configs
    qs = Order.objects.all() if queryset is None else queryset
    return qs.filter(level_q(level, now=now, configs=configs))


def level_annotation(*, now: datetime.datetime, configs: Iterable[DunningConfig]) -> Case:
    """An expression giving each order's current level: 1, 2, 3, 4 (= completed) or NULL."""
    configs = list(configs)
    whens = [When(level_q(level, now=now, configs=configs), then=Value(4 if level == COMPLETED else level))
             for level in ALL_LEVELS]
    return Case(*whens, default=Value(None), output_field=IntegerField())


def live_reminder_exists(level: int) -> Exists:
    """A reminder of `level` for the order that is in flight or went out (anything but failed)."""
    return Exists(Reminder.objects.filter(order=OuterRef("pk"), level=level).exclude(status=Reminder.Status.FAILED))


def attempts_exhausted(level: int) -> Exists:
    """The order's reminder of `level` already failed MAX_SEND_ATTEMPTS times."""
    failed = (Reminder.objects.filter(order=OuterRef("pk"), level=level, status=Reminder.Status.FAILED)
              .order_by().values("order").annotate(n=Count("id")).filter(n__gte=MAX_SEND_ATTEMPTS))
    return Exists(failed)


def orders_due(level: int, *, now: datetime.datetime, configs: Iterable[DunningConfig], automatic: bool,
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
              ordered_at__lt=_before_day_after(today - datetime.timedelta(days=c.cancel_after_days)))
        if c.only_orders_since:
            q &= Q(ordered_at__gte=local_midnight(c.only_orders_since))
        if c.cancellation_action == DunningConfig.CancellationAction.FLAG:
            q &= Q(flagged_for_cancellation_at__isnull=True)
        parts.append(q)
    if not parts:
        return NOTHING
    return OPEN & Q(dunning_blocked=False) & reduce(or_, parts)
