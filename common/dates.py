"""Calendar dates in TIME_ZONE (default Europe/Berlin): the one place that turns instants into the
local dates the business rules count in, and local dates back into instants.

Rules are stated in calendar days ("days overdue", "at least 7 days since the last reminder"), so a
date is always the local date of an aware datetime, and a day boundary is the local midnight computed
with zoneinfo: exact across daylight-saving changes (a local day has 23 or 25 hours then)."""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

from django.conf import settings


def tz() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def local_date(value: datetime.datetime) -> datetime.date:
    """The calendar date of an aware datetime in TIME_ZONE. Within hours of the ends of the
    calendar (9999-12-31 23:30 UTC is year 10000 in Berlin) the date where it is stored."""
    try:
        return value.astimezone(tz()).date()
    except OverflowError:
        return value.date()


def local_today(now: datetime.datetime) -> datetime.date:
    """Today in TIME_ZONE at the instant `now`."""
    return local_date(now)


def local_midnight(day: datetime.date) -> datetime.datetime:
    """The first instant of a calendar day in TIME_ZONE, as an aware datetime."""
    return datetime.datetime.combine(day, datetime.time.min, tzinfo=tz())


def end_of_day(day: datetime.date) -> datetime.datetime:
    """The local midnight after `day`: `x < end_of_day(d)` is `local_date(x) <= d`."""
    return local_midnight(day + datetime.timedelta(days=1))
