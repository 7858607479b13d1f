"""What an order may hold, in one place: the range of its dates, the text of its names, and the
combinations of state that make sense. The admin form, the CSV import and the services all ask
here, so a value one path refuses cannot come in through another.

Dates: Python's datetime ends at year 1 and 9999, PostgreSQL's timestamp does not. A paid date of
0001-01-01 in Europe/Berlin is 1 BC in UTC: PostgreSQL stores it, and every later read of the row
fails. An order date near 9999-12-31 overflows the due date (order date + payment term). So every
date typed or imported lies in a sane range: from EARLIEST_DATE to a year after today for an
order date; from the order's day to today for the day it was paid, cancelled, flagged or released.
Checks are on calendar days in TIME_ZONE, as staff see them."""

from __future__ import annotations

import datetime
import unicodedata

from django.db.models import Count, Max, QuerySet
from django.utils.translation import gettext_lazy as _

from common.dates import end_of_day, local_date

from .models import OPEN, Order

EARLIEST_DATE = datetime.date(2000, 1, 1)
# The moments of an order's life after it was placed (the order date has its own range).
LATER_DATES: tuple[str, ...] = ("paid_at", "cancelled_at", "flagged_for_cancellation_at", "reservation_released_at")
# Unicode categories refused in names: control characters (NUL, tab, CR, LF, ESC, DEL, C1) and the
# line and paragraph separators. A name must stay one line in a plain-text e-mail or a CSV cell.
_CONTROL_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})


class DateOutOfRange(ValueError):
    """A date outside the range this module allows."""


def latest_order_date(today: datetime.date) -> datetime.date:
    """The last day an order date may fall on: one year after `today` (Feb 29 -> Feb 28)."""
    try:
        return today.replace(year=today.year + 1)
    except ValueError:
        return today.replace(year=today.year + 1, day=28)


def order_date_in_range(ordered_at: datetime.datetime, *, today: datetime.date) -> bool:
    return EARLIEST_DATE <= local_date(ordered_at) <= latest_order_date(today)


class Later:
    """Why a date cannot be the day an order was paid, cancelled, flagged or released."""

    FUTURE = "future"
    TOO_EARLY = "too_early"
    BEFORE_ORDER = "before_order"


def later_date_issue(value: datetime.datetime, *, ordered_at: datetime.datetime | None,
                     today: datetime.date) -> str | None:
    """A `Later` code, or None when `value` lies between the order's day (and EARLIEST_DATE) and
    today."""
    day = local_date(value)
    if day > today:
        return Later.FUTURE
    if day < EARLIEST_DATE:
        return Later.TOO_EARLY
    if ordered_at is not None and day < local_date(ordered_at):
        return Later.BEFORE_ORDER
    return None


def check_paid_at(paid_at: datetime.datetime, *, now: datetime.datetime) -> None:
    """Raise DateOutOfRange unless `paid_at` lies between EARLIEST_DATE and today."""
    if later_date_issue(paid_at, ordered_at=None, today=local_date(now)):
        raise DateOutOfRange(f"paid_at {paid_at.isoformat()} is not between {EARLIEST_DATE} and today")


def open_orders_placed_after(queryset: QuerySet[Order], day: datetime.date) -> tuple[int, datetime.date | None]:
    """How many open orders of `queryset` were placed after `day` (local), and the latest local
    order date among them: a payment received on `day` cannot be theirs. One query."""
    row = queryset.filter(OPEN, ordered_at__gte=end_of_day(day)).aggregate(n=Count("pk"), latest=Max("ordered_at"))
    return row["n"], local_date(row["latest"]) if row["latest"] else None


def control_character(text: str) -> str | None:
    """The first control character or line break in `text` as "U+000A", or None."""
    for char in text:
        if unicodedata.category(char) in _CONTROL_CATEGORIES:
            return f"U+{ord(char):04X}"
    return None


TEXT_FIELDS: tuple[str, ...] = ("number", "customer_name", "customer_email", "dunning_block_reason")


def order_problems(order: Order, *, now: datetime.datetime) -> dict[str | None, list[str]]:
    """Every reason `order` (as it would be saved) is inconsistent, by field name (None: the
    order as a whole). Empty when it may be saved. The reminder count and date are the dunning
    engine's and are checked by the database (constraints on Order)."""
    today = local_date(now)
    problems: dict[str | None, list[str]] = {}

    def add(name: str | None, message) -> None:
        problems.setdefault(name, []).append(str(message))

    for name in TEXT_FIELDS:
        char = control_character(getattr(order, name) or "")
        if char:
            add(name, _("Contains a control character (%(char)s); only one line of text is allowed.")
                % {"char": char})
    if order.ordered_at is not None and not order_date_in_range(order.ordered_at, today=today):
        add("ordered_at", _("The order date must lie between %(earliest)s and %(latest)s.")
            % {"earliest": EARLIEST_DATE.isoformat(), "latest": latest_order_date(today).isoformat()})
    later_messages = {
        Later.FUTURE: _("This date cannot be in the future."),
        Later.TOO_EARLY: _("This date cannot be before %(earliest)s.") % {"earliest": EARLIEST_DATE.isoformat()},
        Later.BEFORE_ORDER: _("This date cannot be before the order date."),
    }
    for name in LATER_DATES:
        value = getattr(order, name)
        issue = None if value is None else later_date_issue(value, ordered_at=order.ordered_at, today=today)
        if issue:
            add(name, later_messages[issue])
    if order.paid_at is not None and order.cancelled_at is not None:
        add(None, _("An order cannot be paid and cancelled at once."))
    if order.dunning_blocked and not order.dunning_block_reason.strip():
        add("dunning_block_reason", _("Please give a reason for blocking dunning."))
    if not order.dunning_blocked and order.dunning_block_reason.strip():
        add("dunning_block_reason", _("A block reason needs dunning blocked (or leave it empty)."))
    if order.reservation_released_at is not None and order.cancelled_at is None:
        add("reservation_released_at", _("Only a cancelled order can have its reservation released."))
    if (order.flagged_for_cancellation_at is not None and order.payment_method_id is not None
            and not order.payment_method.is_prepayment):
        add("flagged_for_cancellation_at", _("Only prepayment orders are flagged for cancellation."))
    return problems
