"""The audit trail (`OrderEvent`): its one writer, and the one place that turns a stored row into
the sentence the order page and the admin show.

Every service that changes an order calls `order_events_log` in the same transaction as the change,
with an action declared in `OrderEvent.Action`. The details stay machine-readable in the database
(ids, codes, ISO dates, amounts as strings); `order_event_sentence` reads them back into one
translated sentence per action ("Mahnstufe 1, automatisch", "Importiert aus long.csv, Zeile 2"),
with amounts and dates formatted for the active language and in TIME_ZONE. Each action has its
function in `SENTENCES` (a test checks that none is missing); a key a row does not have is left out
of the sentence, so rows written before a key existed still read well, and a row whose action is
no longer declared shows its details as plain values instead of failing."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.utils.text import capfirst
from django.utils.translation import get_language, gettext, pgettext_lazy

from common.bulk import insert_values
from common.dates import local_date, tz
from common.formats import format_count, format_day, format_money

from .models import Order, OrderEvent

Action = OrderEvent.Action


def order_events_log(
    entries: Iterable[tuple[int, Mapping[str, Any]]],
    *,
    action: OrderEvent.Action | str,
    at: datetime.datetime,
    user=None,
) -> int:
    """Write one event per (order id, details) of `entries`, all with `action` at `at` by `user`
    (None: the system). One statement for all of them; returns how many were written."""
    action = OrderEvent.Action(action)  # ValueError for an undeclared action
    user_id = user.pk if user is not None else None
    rows = [(order_id, action.value, user_id, at, dict(details)) for order_id, details in entries]
    # COPY on PostgreSQL from 50 rows on, without a model instance per row (common/bulk.py)
    insert_values(OrderEvent, ["order_id", "action", "user_id", "at", "details"], rows)
    return len(rows)


# --- reading it back --------------------------------------------------------------------------

def order_event_label(action: str) -> str:
    """The label of an action code; an undeclared one (an old row) as its code in words."""
    try:
        return str(Action(action).label)
    except ValueError:
        return capfirst(action.replace("_", " "))


def order_event_sentence(action: str, details: Mapping[str, Any] | None, *, currency: str = "EUR") -> str:
    """The details of one event as a sentence in the active language ("" when there is nothing to
    add to the action's label). `currency` is the order's, for amounts stored without one."""
    details = details if isinstance(details, Mapping) else {}
    write = SENTENCES.get(action)
    if write is None:
        text = ", ".join(str(v) for v in details.values() if v not in (None, "", [], {}))
    else:
        text = write(_Details(details, currency))
    if details.get("demo"):
        text = gettext("%(text)s (demo data)") % {"text": text} if text else gettext("Demo data")
    return text


class _Details:
    """The stored details with readers that format for the active language; every reader
    returns "" (or None) for a missing or unreadable value."""

    def __init__(self, raw: Mapping[str, Any], currency: str):
        self.raw, self.currency = raw, currency
        self.language = (get_language() or "de")[:2]

    def get(self, key: str) -> Any:
        value = self.raw.get(key)
        return None if value in (None, "") else value

    def text(self, key: str) -> str:
        value = self.get(key)
        return "" if value is None else str(value)

    def number(self, key: str) -> str:
        value = self.get(key)
        try:
            return format_count(int(value), self.language) if value is not None else ""
        except (TypeError, ValueError):
            return str(value)

    def money(self, key: str, currency_key: str = "currency") -> str:
        value = self.get(key)
        if value is None:
            return ""
        try:
            return format_money(Decimal(str(value)), self.text(currency_key) or self.currency, self.language)
        except (InvalidOperation, ValueError):
            return str(value)

    def _parsed(self, key: str) -> datetime.datetime | str:
        """The ISO date or datetime stored under `key`; "" when missing, the raw text when unreadable."""
        value = self.get(key)
        if value is None:
            return ""
        try:
            return datetime.datetime.fromisoformat(str(value))
        except ValueError:
            return str(value)

    def day(self, key: str) -> str:
        """An ISO date or datetime as the local calendar day ("5. Nov. 2026")."""
        parsed = self._parsed(key)
        if isinstance(parsed, str):
            return parsed
        day = local_date(parsed) if parsed.tzinfo else parsed.date()
        return format_day(day, self.language)

    def moment(self, key: str) -> str:
        """An ISO datetime as local day and time."""
        parsed = self._parsed(key)
        if isinstance(parsed, str):
            return parsed
        if parsed.tzinfo:
            parsed = parsed.astimezone(tz())
        return f"{format_day(parsed.date(), self.language)}, {parsed:%H:%M}"

    def fields(self, key: str = "fields") -> str:
        """Order field names as their labels ("Bezahlt am, Betrag")."""
        names = self.get(key)
        if not isinstance(names, list):
            return ""
        labels = []
        for name in names:
            try:
                labels.append(str(Order._meta.get_field(name).verbose_name))
            except FieldDoesNotExist:
                labels.append(str(name))
        return ", ".join(labels)


def _join(*parts: str) -> str:
    return ", ".join(p for p in parts if p)


def _level(d: _Details) -> str:
    level = d.number("level")
    return gettext("Dunning level %(level)s") % {"level": level} if level else ""


API_SOURCE = "api"  # the `file` of orders written through the API (api.services)


def _source(d: _Details) -> str:
    file, row = d.text("file"), d.number("row")
    if file == API_SOURCE:
        return str(pgettext_lazy("order imported", "through the API"))
    if file and row:
        return gettext("from %(file)s, row %(row)s") % {"file": file, "row": row}
    return gettext("from %(file)s") % {"file": file} if file else ""


def _imported(d: _Details) -> str:
    source = _source(d)
    return gettext("Imported %(source)s") % {"source": source} if source else ""


def _import_updated(d: _Details) -> str:
    source = _source(d)
    fields = d.fields()
    text = gettext("Updated by the import %(source)s") % {"source": source} if source else ""
    return _join(text, gettext("changed: %(fields)s") % {"fields": fields} if fields else "")


def _marked_paid(d: _Details) -> str:
    day = d.day("paid_at")
    return gettext("Paid on %(day)s") % {"day": day} if day else ""


def _mark_paid_undone(d: _Details) -> str:
    day = d.day("paid_at")
    return gettext("The payment date %(day)s was removed") % {"day": day} if day else ""


def _email_changed(d: _Details) -> str:
    old, new = d.text("old"), d.text("new")
    if old and new:
        return gettext("From %(old)s to %(new)s") % {"old": old, "new": new}
    return new


def _blocked(d: _Details) -> str:
    reason = d.text("reason")
    return gettext("Reason: %(reason)s") % {"reason": reason} if reason else ""


def _nothing(d: _Details) -> str:
    return ""


def _cancelled(d: _Details) -> str:
    release = d.get("release_reservation")
    if release is None:
        return ""
    return gettext("Stock reservation released") if release else gettext("Stock reservation kept")


def _fields_changed(d: _Details) -> str:
    fields = d.fields()
    return gettext("Fields: %(fields)s") % {"fields": fields} if fields else ""


TRIGGERS = {"automatic": pgettext_lazy("reminder sent", "automatically"),
            "manual": pgettext_lazy("reminder sent", "by hand")}


def _reminder_sent(d: _Details) -> str:
    trigger = d.text("trigger")
    return _join(_level(d), str(TRIGGERS.get(trigger, trigger)))


def _delivery_problem(d: _Details) -> str:
    recipient, provider, when = d.text("recipient"), d.text("provider"), d.moment("occurred_at")
    parts = [_level(d), gettext("to %(recipient)s") % {"recipient": recipient} if recipient else ""]
    if provider:
        parts.append(gettext("reported by %(provider)s") % {"provider": capfirst(provider)})
    if when:
        parts.append(gettext("on %(moment)s") % {"moment": when})
    text = _join(*parts)
    description = d.text("description")
    return f"{text}: {description}" if text and description else text or description


MATCHED_BY = {"auto": pgettext_lazy("payment matched", "automatically"),
              "manual": pgettext_lazy("payment matched", "by hand"),
              "api": pgettext_lazy("payment matched", "through the API")}


def _payment(d: _Details) -> str:
    amount, day = d.money("amount"), d.day("booked_on")
    if amount and day:
        return gettext("%(amount)s booked on %(day)s") % {"amount": amount, "day": day}
    return amount


def _payment_matched(d: _Details) -> str:
    how = d.text("matched_by")
    return _join(_payment(d), gettext("assigned %(how)s") % {"how": MATCHED_BY[how]} if how in MATCHED_BY else "")


def _payment_part(d: _Details) -> str:
    part, parts, whole = d.number("part"), d.number("parts"), d.money("payment_amount")
    share = gettext("part %(part)s of %(parts)s") % {"part": part, "parts": parts} if part and parts else ""
    return _join(_payment(d), share, gettext("of a payment of %(amount)s") % {"amount": whole} if whole else "")


def _paid_by_bank(d: _Details) -> str:
    paid, day = d.money("paid"), d.day("paid_at")
    return _join(gettext("Payments received: %(amount)s") % {"amount": paid} if paid else "",
                 gettext("paid on %(day)s") % {"day": day} if day else "")


def _reopened(d: _Details) -> str:
    paid = d.money("paid")
    return gettext("Payments now cover only %(amount)s") % {"amount": paid} if paid else ""


def _auto_rule(d: _Details) -> str:
    if d.text("rule") == "cancel_after_days":
        return gettext("Prepayment not received within the days set for cancellation")
    return d.text("rule")


def _auto_cancel_and_release(d: _Details) -> str:
    return _join(_auto_rule(d), gettext("stock reservation released"))


SENTENCES: dict[str, Callable[[_Details], str]] = {
    Action.IMPORTED: _imported,
    Action.IMPORT_UPDATED: _import_updated,
    Action.MARKED_PAID: _marked_paid,
    Action.DUNNING_BLOCKED: _blocked,
    Action.DUNNING_UNBLOCKED: _nothing,
    Action.CANCELLED: _cancelled,
    Action.CANCELLATION_FLAG_CLEARED: _nothing,
    Action.REMINDER_MARKED_SENT: _level,
    Action.REMINDER_MARKED_FAILED: _level,
    Action.ADMIN_CREATED: _fields_changed,
    Action.ADMIN_CHANGED: _fields_changed,
    Action.REMINDER_SENT: _reminder_sent,
    Action.REMINDER_BOUNCED: _delivery_problem,
    Action.REMINDER_COMPLAINED: _delivery_problem,
    Action.PAYMENT_MATCHED: _payment_matched,
    Action.PAYMENT_UNASSIGNED: _payment,
    Action.PAID_BY_BANK: _paid_by_bank,
    Action.REOPENED_BY_UNASSIGN: _reopened,
    Action.AUTO_FLAG: _auto_rule,
    Action.AUTO_CANCEL: _auto_rule,
    Action.AUTO_CANCEL_AND_RELEASE: _auto_cancel_and_release,
    Action.MARK_PAID_UNDONE: _mark_paid_undone,
    Action.PAYMENT_PART_ASSIGNED: _payment_part,
    Action.PAYMENT_SPLIT_UNDONE: _payment,
    Action.EMAIL_CHANGED: _email_changed,
}
