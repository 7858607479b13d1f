"""Writes on orders that back-office staff start by hand: mark paid (and undo it), block or unblock
dunning, cancel flagged prepayment orders, clear the cancellation flag, correct the customer's
e-mail address. (Resolving a reminder whose outcome
is unknown is a reminder's transition: dunning.services.reminders.)

Every service is keyword-only, takes `now` and `user`, locks the rows it changes with
SELECT ... FOR UPDATE, re-checks them under the lock, changes them with one set-based UPDATE and
writes one OrderEvent per changed order in the same transaction. Values out of range (see
orders.validation) raise ValueError: no path stores them. Large selections are worked in
chunks, one transaction each, so no lock is held for long. Orders that do not qualify are
skipped and reported with a reason (`BulkSkip`)."""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Case, CharField, Q, Value, When
from django.utils.translation import gettext_lazy as _

from common.choices import ReasonChoices
from common.dates import end_of_day, local_date, local_midnight
from common.iterables import chunked
from webhooks.models import EventType
from webhooks.services import events_emit

from .audit import order_events_log
from .models import OPEN, Order, OrderEvent, touched
from .validation import check_paid_at, control_character, order_problems

CHUNK_SIZE = 1000


class BulkSkip(ReasonChoices):
    """Why a bulk action left an order of the selection alone."""

    NOT_FOUND = "not_found", _("order not found")
    NOT_OPEN = "not_open", _("already paid or cancelled")
    ALREADY_BLOCKED = "already_blocked", _("dunning already blocked")
    NOT_BLOCKED = "not_blocked", _("dunning not blocked")
    NOT_PREPAYMENT = "not_prepayment", _("not a prepayment order")
    NOT_FLAGGED = "not_flagged", _("not flagged for cancellation")
    PAID_BEFORE_ORDERED = "paid_before_ordered", _("payment date before the order date")


Action = OrderEvent.Action


@dataclass(frozen=True)
class BulkRule:
    """Which orders a bulk action changes (`eligible`) and why it leaves each other one alone: the
    reason of the first of `reasons` it matches. The service applies it under the lock; the
    confirmation page asks it beforehand (`skip_reason_expression`), so both say the same."""

    eligible: Q
    reasons: tuple[tuple[Q, str], ...]

    def skip_reason_expression(self) -> Case:
        """An annotation: "" for an order the action would change, else its BulkSkip code."""
        whens = [When(self.eligible, then=Value(""))]
        whens += [When(q, then=Value(str(reason))) for q, reason in self.reasons]
        return Case(*whens, default=Value(str(BulkSkip.NOT_FOUND)), output_field=CharField())


_NOT_OPEN = ~OPEN

RULES: dict[str, BulkRule] = {
    # mark_paid: the payment day adds a condition (orders placed after it are skipped), see orders_mark_paid
    "mark_paid": BulkRule(OPEN, ((_NOT_OPEN, BulkSkip.NOT_OPEN),)),
    "block": BulkRule(OPEN & Q(dunning_blocked=False),
                      ((_NOT_OPEN, BulkSkip.NOT_OPEN), (Q(dunning_blocked=True), BulkSkip.ALREADY_BLOCKED))),
    "unblock": BulkRule(OPEN & Q(dunning_blocked=True),
                        ((_NOT_OPEN, BulkSkip.NOT_OPEN), (Q(dunning_blocked=False), BulkSkip.NOT_BLOCKED))),
    "cancel": BulkRule(
        OPEN & Q(payment_method__is_prepayment=True, flagged_for_cancellation_at__isnull=False),
        ((_NOT_OPEN, BulkSkip.NOT_OPEN),
         (Q(payment_method__is_prepayment=False), BulkSkip.NOT_PREPAYMENT),
         (Q(flagged_for_cancellation_at__isnull=True), BulkSkip.NOT_FLAGGED)),
    ),
    "clear_flag": BulkRule(OPEN & Q(flagged_for_cancellation_at__isnull=False),
                           ((_NOT_OPEN, BulkSkip.NOT_OPEN),
                            (Q(flagged_for_cancellation_at__isnull=True), BulkSkip.NOT_FLAGGED))),
}


@dataclass
class BulkResult:
    done: list[int] = field(default_factory=list)  # order ids changed
    skipped: dict[int, str] = field(default_factory=dict)  # order id -> BulkSkip.*

    @property
    def skip_counts(self) -> dict[str, int]:
        return dict(Counter(self.skipped.values()))


def _bulk(
    *,
    order_ids: Iterable[int],
    user,
    now: datetime.datetime,
    action: OrderEvent.Action,
    rule: BulkRule,
    values: dict[str, Any],
    details: dict[str, Any] | None = None,
    event: tuple[str, dict[str, Any]] | None = None,
) -> BulkResult:
    """Lock each chunk, change the orders matching `rule.eligible` with one UPDATE, audit them, and
    give every other order of the chunk the reason of the first of `rule.reasons` it matches. `event`
    (type, data) is emitted as a webhook event for each changed order, in the same transaction."""
    result = BulkResult()
    for chunk in chunked(order_ids, CHUNK_SIZE):
        with transaction.atomic():
            locked = Order.objects.filter(id__in=chunk).select_for_update(of=("self",)).order_by("id")
            changed = list(locked.filter(rule.eligible).values_list("id", "number", "sales_account_id"))
            ok = [order_id for order_id, _number, _account in changed]
            if ok:
                Order.objects.filter(id__in=ok).update(**values, updated_at=touched())
                order_events_log(((i, details or {}) for i in ok), action=action, at=now, user=user)
                if event:
                    events_emit(event[0], [(account_id, {"order_number": number, **event[1]})
                                           for _id, number, account_id in changed], now=now)
            result.done += ok
            rest = set(chunk) - set(ok)
            for q, reason in rule.reasons:
                if not rest:
                    break
                hit = set(Order.objects.filter(q, id__in=rest).values_list("id", flat=True))
                result.skipped.update(dict.fromkeys(hit, reason))
                rest -= hit
            result.skipped.update(dict.fromkeys(rest, BulkSkip.NOT_FOUND))
    return result


def orders_mark_paid(
    *, order_ids: Iterable[int], paid_at: datetime.datetime, user, now: datetime.datetime
) -> BulkResult:
    """Record the payment of open orders; paid or cancelled ones are skipped, and so are orders
    placed after the day of the payment (a bulk selection spans many order dates: the others
    are still marked, the late ones reported). Raises ValueError for a payment date before
    2000-01-01 or after today."""
    check_paid_at(paid_at, now=now)
    placed_by_then = Q(ordered_at__lt=end_of_day(local_date(paid_at)))
    return _bulk(
        order_ids=order_ids,
        user=user,
        now=now,
        action=Action.MARKED_PAID,
        rule=BulkRule(RULES["mark_paid"].eligible & placed_by_then,
                      (*RULES["mark_paid"].reasons, (~placed_by_then, BulkSkip.PAID_BEFORE_ORDERED))),
        values={"paid_at": paid_at},
        details={"paid_at": paid_at.isoformat()},
        event=(EventType.ORDER_PAID, {"paid_at": paid_at.isoformat()}),
    )


def orders_block_dunning(*, order_ids: Iterable[int], reason: str, user, now: datetime.datetime) -> BulkResult:
    """Exempt open orders from reminders and cancellation, with a reason."""
    reason = reason.strip()
    if not reason:
        raise ValueError("a reason is required to block dunning")
    char = control_character(reason)
    if char:
        raise ValueError(f"the reason contains a control character ({char}); only one line of text is allowed")
    reason = reason[:200]
    return _bulk(
        order_ids=order_ids,
        user=user,
        now=now,
        action=Action.DUNNING_BLOCKED,
        rule=RULES["block"],
        values={"dunning_blocked": True, "dunning_block_reason": reason},
        details={"reason": reason},
    )


def orders_unblock_dunning(*, order_ids: Iterable[int], user, now: datetime.datetime) -> BulkResult:
    """Let blocked open orders be reminded again."""
    return _bulk(
        order_ids=order_ids,
        user=user,
        now=now,
        action=Action.DUNNING_UNBLOCKED,
        rule=RULES["unblock"],
        values={"dunning_blocked": False, "dunning_block_reason": ""},
    )


def orders_cancel(*, order_ids: Iterable[int], release_reservation: bool, user, now: datetime.datetime) -> BulkResult:
    """Cancel open prepayment orders flagged for cancellation (optionally releasing their stock
    reservation); any other order is skipped with the reason."""
    values: dict[str, Any] = {"cancelled_at": now}
    if release_reservation:
        values["reservation_released_at"] = now
    return _bulk(
        order_ids=order_ids,
        user=user,
        now=now,
        action=Action.CANCELLED,
        rule=RULES["cancel"],
        values=values,
        details={"release_reservation": release_reservation},
        event=(EventType.ORDER_CANCELLED,
               {"cancelled_at": now.isoformat(), "release_reservation": release_reservation}),
    )


def orders_clear_cancellation_flag(*, order_ids: Iterable[int], user, now: datetime.datetime) -> BulkResult:
    """Take the cancellation flag off open orders (the automatic job may flag them again later
    unless dunning is blocked)."""
    return _bulk(
        order_ids=order_ids,
        user=user,
        now=now,
        action=Action.CANCELLATION_FLAG_CLEARED,
        rule=RULES["clear_flag"],
        values={"flagged_for_cancellation_at": None},
    )


# --- one order, from its page -------------------------------------------------------------------

class OrderActionRefused(Exception):
    """The order is not in the state the action needs; the message says why (for staff)."""


# The events that can set or clear paid_at: staff's "mark paid" may be undone only while it is the
# latest of them (see undoable_mark_paid).
PAYMENT_STATE_ACTIONS = (
    Action.MARKED_PAID, Action.MARK_PAID_UNDONE, Action.PAID_BY_BANK, Action.REOPENED_BY_UNASSIGN,
    Action.IMPORTED, Action.IMPORT_UPDATED, Action.ADMIN_CREATED, Action.ADMIN_CHANGED,
)


def undoable_mark_paid(order: Order) -> OrderEvent | None:
    """Staff's "mark paid" event that set the order's current `paid_at`, or None: when the order is
    open or cancelled, when bank payments, an import or an admin edit set or changed the payment
    since (payments.services owns payments from the bank), or when paid_at differs from the one
    the event recorded. One query."""
    if order.paid_at is None or order.cancelled_at is not None:
        return None
    event = order.events.filter(action__in=PAYMENT_STATE_ACTIONS).order_by("-at", "-id").first()
    if event is None or event.action != Action.MARKED_PAID:
        return None
    try:
        recorded = datetime.datetime.fromisoformat(event.details.get("paid_at", ""))
    except (TypeError, ValueError):
        return None
    return event if recorded == order.paid_at else None


def order_mark_paid_undo(*, order_id: int, user, now: datetime.datetime) -> Order:
    """Take back staff's "mark paid" of one order (a slip of the hand, a payment that bounced):
    `paid_at` is cleared, so the order is open again at the level it was at (marking it paid
    changed nothing else), with a MARK_PAID_UNDONE event naming the payment date taken back.
    Raises OrderActionRefused when the payment was not a manual "mark paid" (or is no longer the
    latest change of the payment state)."""
    with transaction.atomic():
        order = Order.objects.select_for_update(of=("self",)).get(pk=order_id)
        if undoable_mark_paid(order) is None:
            raise OrderActionRefused(_("Only a payment marked by hand can be undone here, and only while it is the "
                                       "latest change of the order's payment."))
        paid_at = order.paid_at
        Order.objects.filter(pk=order.pk).update(paid_at=None, updated_at=touched())
        order_events_log([(order.pk, {"paid_at": paid_at.isoformat()})], action=Action.MARK_PAID_UNDONE,
                         at=now, user=user)
    order.refresh_from_db()
    return order


def order_change_email(*, order_id: int, email: str, user, now: datetime.datetime) -> bool:
    """Correct the customer's e-mail address of one order (the next reminder goes there), with an
    EMAIL_CHANGED event holding the old and the new address. Raises ValidationError for an
    invalid address (Django's EmailValidator, one line, at most the field's length). Returns
    False when the address was already that one (nothing written)."""
    email = email.strip()
    field_ = Order._meta.get_field("customer_email")
    if not email:
        raise ValidationError(_("Please enter an e-mail address."))
    if control_character(email) or len(email) > field_.max_length:
        raise ValidationError(_("Enter a valid email address."))
    validate_email(email)
    with transaction.atomic():
        order = Order.objects.select_for_update(of=("self",)).get(pk=order_id)
        if order.customer_email == email:
            return False
        Order.objects.filter(pk=order.pk).update(customer_email=email, updated_at=touched())
        order_events_log([(order.pk, {"old": order.customer_email, "new": email})], action=Action.EMAIL_CHANGED,
                         at=now, user=user)
    return True


# --- edits by hand (the admin) -------------------------------------------------------------------

# Written only by the dunning engine (and checked by the database): never taken from an edit.
_ENGINE_FIELDS = frozenset({"reminders_sent", "last_reminder_at"})


def order_save_edit(*, order: Order, fields: Collection[str] | None, user, now: datetime.datetime) -> list[str]:
    """Save an order created (`fields` None) or edited by hand (`fields`: the fields the person
    changed), with one OrderEvent ("admin_created" or "admin_changed") naming the fields that
    changed, in the same transaction; nothing is written when nothing changed. An edit writes only
    `fields`, onto the row as it is under the lock: what the engine or a colleague changed since
    the form was opened is kept. Raises ValueError when the result is inconsistent
    (orders.validation.order_problems; the admin form shows the same reasons). Returns the
    changed field names."""
    editable = [f for f in Order._meta.concrete_fields
                if not f.primary_key and f.name not in _ENGINE_FIELDS and f.name != "updated_at"]
    with transaction.atomic():
        if fields is None:
            target, action = order, Action.ADMIN_CREATED
            changed = [f.name for f in editable if getattr(order, f.attname) not in (None, "")]
        else:
            target, action = Order.objects.select_for_update().get(pk=order.pk), Action.ADMIN_CHANGED
            changed = []
            for f in editable:
                if f.name in fields and getattr(order, f.attname) != getattr(target, f.attname):
                    setattr(target, f.attname, getattr(order, f.attname))
                    changed.append(f.name)
            if not changed:
                return []
        problems = order_problems(target, now=now)
        if problems:
            raise ValueError("; ".join(f"{name or 'order'}: {' '.join(msgs)}" for name, msgs in problems.items()))
        target.save(update_fields=None if fields is None else [*changed, "updated_at"])
        order_events_log([(target.pk, {"fields": sorted(changed)})], action=action, at=now, user=user)
    if target is not order:
        order.refresh_from_db()
    return changed


# --- payments from the bank (written by payments.services, which decides when an order is covered) ---

def orders_mark_paid_by_bank(
    *, paid: Mapping[int, tuple[datetime.datetime, Mapping[str, Any]]], user, now: datetime.datetime
) -> list[int]:
    """Set `paid_at` on the open orders of `paid` (order id -> (paid_at, audit details)) whose
    bank payments now cover them, with one PAID_BY_BANK event each. Call inside the caller's
    transaction with the orders locked; orders no longer open are left alone. A paid_at before the
    order's day is moved to the order's local midnight (orders.validation forbids the earlier day).
    Returns the ids changed."""
    if not paid:
        return []
    done: list[int] = []
    rows = Order.objects.filter(OPEN, id__in=list(paid)).values_list("id", "ordered_at", "number", "sales_account_id")
    by_value: dict[datetime.datetime, list[int]] = {}
    events = []
    hooks = []
    for order_id, ordered_at, number, sales_account_id in rows:  # tuples: 85,000 orders per import at scale
        paid_at, details = paid[order_id]
        if local_date(paid_at) < local_date(ordered_at):
            paid_at = local_midnight(local_date(ordered_at))
        by_value.setdefault(paid_at, []).append(order_id)
        events.append((order_id, {**details, "paid_at": paid_at.isoformat()}))
        hooks.append((sales_account_id, {"order_number": number, "paid_at": paid_at.isoformat()}))
        done.append(order_id)
    for paid_at, ids in by_value.items():
        Order.objects.filter(id__in=ids).update(paid_at=paid_at, updated_at=touched())
    order_events_log(events, action=Action.PAID_BY_BANK, at=now, user=user)
    events_emit(EventType.ORDER_PAID, hooks, now=now)
    return done


def orders_reopen_unpaid(*, order_ids: Iterable[int], details: Mapping[str, Any], user,
                         now: datetime.datetime) -> list[int]:
    """Clear `paid_at` of orders paid by bank whose payments no longer cover them (staff took a
    payment off). Orders paid by hand or cancelled stay as they are. Returns the ids reopened."""
    ids = list(Order.objects.filter(id__in=list(order_ids), paid_at__isnull=False, cancelled_at__isnull=True,
                                    events__action=Action.PAID_BY_BANK).distinct().values_list("id", flat=True))
    if ids:
        Order.objects.filter(id__in=ids).update(paid_at=None, updated_at=touched())
        order_events_log(((i, details) for i in ids), action=Action.REOPENED_BY_UNASSIGN, at=now, user=user)
    return ids
