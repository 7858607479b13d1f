"""The transitions of a reminder after it was claimed (written as pending, in flight), each in one
place, whoever starts it:

- `reminders_mark_sent`, pending -> sent: the send write-back, a delivery event that arrives before
  the write-back or for a reminder whose outcome was unknown, and staff's "mark as sent". The order
  moves up to the reminder's level in the same call (`orders_mark_reminded`);
- `reminders_mark_failed`, pending -> failed: a send that failed, and staff's "mark as failed";
- `reminders_mark_outcome_unknown`: the provider left the outcome unclear (read timeout); the
  reminder stays pending and is never sent again automatically;
- `reminders_withdraw`: claimed but never handed to the provider (the provider went down): deleted,
  so a later run sends them.

A status a delivery event set already (delivered, bounced) is never moved back. Each function
expects to run inside the caller's transaction and writes with set-based UPDATEs."""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection as db_connection
from django.db import transaction
from django.utils.translation import gettext_noop

from common.i18n import stored_text
from orders.audit import order_events_log
from orders.models import Order, OrderEvent, touched

from ..models import Reminder
from ..selectors import stale_after

PENDING = Reminder.Status.PENDING


@dataclass(frozen=True)
class WentOut:
    """A reminder known to have gone out, with the provider's message id when there is one."""

    reminder_id: int
    order_id: int
    level: int
    message_id: str = ""


def orders_mark_reminded(order_ids: Iterable[int], *, level: int, at: datetime.datetime) -> int:
    """Move orders up to `level` once its reminder is known to have gone out. Only orders one level
    below move, so the paths that may confirm the same reminder can each call it, in any order."""
    order_ids = list(order_ids)
    if db_connection.vendor == "postgresql":
        # the same UPDATE in plain SQL: the sender calls this once per written-back set, often for a
        # few orders, and compiling the ORM's UPDATE cost more than running it (docs/benchmarks-sending.md)
        with db_connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {Order._meta.db_table} SET reminders_sent = %s, last_reminder_at = %s, "  # noqa: S608
                "updated_at = STATEMENT_TIMESTAMP() WHERE id = ANY(%s) AND reminders_sent = %s",
                [level, at, order_ids, level - 1])
            return cursor.rowcount
    return Order.objects.filter(id__in=order_ids, reminders_sent=level - 1).update(
        reminders_sent=level, last_reminder_at=at, updated_at=touched())


def reminders_mark_sent(items: Sequence[WentOut], *, sent_at: datetime.datetime, now: datetime.datetime,
                        exact: bool = False) -> None:
    """pending -> sent, and each order up to its reminder's level, dated `sent_at`.

    `sent_at` is when the reminder went out. Only the sender knows it `exact`ly (the moment it
    handed the e-mail to the provider): that time is always written. The others give an estimate
    (a delivery event's time; for staff confirming an in-flight reminder, when it was claimed),
    written only where none is recorded yet. A status a delivery event set is kept."""
    if not items:
        return
    if db_connection.vendor == "postgresql":
        # One UPDATE ... FROM (VALUES ...) instead of one per row or bulk_update's CASE per row.
        table = Reminder._meta.db_table
        values = ", ".join(["(%s, %s)"] * len(items))
        params: list[Any] = [PENDING, Reminder.Status.SENT, PENDING, now, sent_at]
        params += [p for item in items for p in (item.reminder_id, item.message_id)]
        with db_connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} AS r SET "  # noqa: S608 - table name from the model, values as params
                "status = CASE WHEN r.status = %s THEN %s ELSE r.status END, "
                "status_changed_at = CASE WHEN r.status = %s THEN %s ELSE r.status_changed_at END, "
                f"sent_at = {'%s' if exact else 'COALESCE(r.sent_at, %s)'}, "
                "message_id = CASE WHEN v.mid <> '' THEN v.mid ELSE r.message_id END "
                f"FROM (VALUES {values}) AS v(id, mid) WHERE r.id = v.id::bigint",
                params)
    else:
        ids = [item.reminder_id for item in items]
        Reminder.objects.filter(id__in=ids, status=PENDING).update(status=Reminder.Status.SENT, status_changed_at=now)
        unset = Reminder.objects.filter(id__in=ids)
        (unset if exact else unset.filter(sent_at__isnull=True)).update(sent_at=sent_at)
        with_id = [Reminder(id=item.reminder_id, message_id=item.message_id) for item in items if item.message_id]
        Reminder.objects.bulk_update(with_id, ["message_id"], batch_size=500)
    by_level: dict[int, list[int]] = defaultdict(list)
    for item in items:
        by_level[item.level].append(item.order_id)
    for level, order_ids in by_level.items():
        orders_mark_reminded(order_ids, level=level, at=sent_at)


def reminders_mark_failed(reminder_ids: Iterable[int], *, error: str, now: datetime.datetime) -> int:
    """pending -> failed with `error`: the level is free again for a later run or a Notify."""
    return Reminder.objects.filter(id__in=list(reminder_ids), status=PENDING).update(
        status=Reminder.Status.FAILED, error=error, status_changed_at=now)


def reminders_mark_outcome_unknown(reminder_ids: Iterable[int], *, error: str, now: datetime.datetime) -> int:
    """The provider may or may not have sent them: they stay pending, with the reason, until a
    delivery event or staff settle them."""
    return Reminder.objects.filter(id__in=list(reminder_ids), status=PENDING).update(
        error=stored_text(gettext_noop("Outcome unknown, not sent again automatically: %(error)s"), error=error),
        status_changed_at=now)


def reminders_withdraw(reminder_ids: Iterable[int]) -> int:
    """Delete claimed reminders that were never handed to the provider."""
    deleted, _ = Reminder.objects.filter(id__in=list(reminder_ids), status=PENDING).delete()
    return deleted


# --- staff resolving a reminder whose outcome is unknown ------------------------------------------


class ReminderNotPending(Exception):
    """The reminder is no longer in flight: someone or something resolved it meanwhile."""


class ReminderStillInFlight(Exception):
    """The reminder was claimed less than DUNNING_STALE_PENDING_MINUTES ago: its send may still be
    running, so staff may not settle it yet."""


def _lock_pending(reminder_id: int, *, now: datetime.datetime) -> Reminder:
    """Lock the order, then its reminder (the order the send service locks them in)."""
    order_id = Reminder.objects.values_list("order_id", flat=True).get(pk=reminder_id)
    Order.objects.select_for_update().get(pk=order_id)
    reminder = Reminder.objects.select_for_update().get(pk=reminder_id)
    if reminder.status != PENDING:
        raise ReminderNotPending(reminder.status)
    if reminder.created_at > now - stale_after():
        raise ReminderStillInFlight(reminder.pk)
    return reminder


def reminder_mark_sent(*, reminder_id: int, user, now: datetime.datetime) -> Reminder:
    """Staff checked (e.g. in the provider's log) that an in-flight reminder went out: count it.
    The order moves up to the reminder's level, dated when the reminder was claimed."""
    with transaction.atomic():
        reminder = _lock_pending(reminder_id, now=now)
        reminders_mark_sent([WentOut(reminder.pk, reminder.order_id, reminder.level)], sent_at=reminder.created_at,
                            now=now)
        order_events_log([(reminder.order_id, {"level": reminder.level, "reminder": reminder.pk})],
                         action=OrderEvent.Action.REMINDER_MARKED_SENT, at=now, user=user)
    reminder.refresh_from_db()
    return reminder


def reminder_mark_failed(*, reminder_id: int, user, now: datetime.datetime) -> Reminder:
    """Staff decided an in-flight reminder did not go out: mark it failed, which frees the level
    so the next run (or a manual Notify) sends it again."""
    with transaction.atomic():
        reminder = _lock_pending(reminder_id, now=now)
        note = stored_text(gettext_noop("Marked as failed by staff (outcome was unknown)."))
        reminders_mark_failed([reminder.pk], error=f"{reminder.error}\n{note}".strip() if reminder.error else note,
                              now=now)
        order_events_log([(reminder.order_id, {"level": reminder.level, "reminder": reminder.pk})],
                         action=OrderEvent.Action.REMINDER_MARKED_FAILED, at=now, user=user)
    reminder.refresh_from_db()
    return reminder
