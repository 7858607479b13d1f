"""The bulk actions on orders that the overview and the order page offer: each with its labels, its
form and the orders service it calls. The views look them up here by key."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from django.utils.formats import date_format, number_format
from django.utils.translation import gettext_lazy, ngettext

from common.dates import local_midnight, local_today
from common.formats import grouped
from orders import services as order_services
from orders.models import Order
from orders.validation import open_orders_placed_after

from . import forms


@dataclass
class BulkAction:
    label: Any
    title: Any
    explanation: Any
    form_class: type[forms.ActionForm]
    run: Callable[..., order_services.BulkResult]
    done_message: Callable[[int], str]
    danger: bool = False
    order_label: Any = None  # the button on the order page, for one order
    # asked before the action runs, with the selection and the form's data: (field, message) of a
    # form error that refuses the whole action, or None
    check: Callable[[QuerySet[Order], dict[str, Any]], tuple[str, str] | None] | None = None


def _payment_day_check(queryset: QuerySet[Order], data: dict[str, Any]) -> tuple[str, str] | None:
    """A payment cannot be received before the order was placed: refuse a day before the order
    date of any selected open order, naming how many and the latest order date."""
    count, latest = open_orders_placed_after(queryset, data["paid_on"])
    if not count:
        return None
    return "paid_on", ngettext(
        "The payment date is before the order date of %(count)s selected order (ordered on %(latest)s). "
        "Choose that day or a later one, or leave the order out.",
        "The payment date is before the order date of %(count)s selected orders (the latest ordered on "
        "%(latest)s). Choose that day or a later one, or leave those orders out.",
        count,
    ) % {"count": number_format(count, force_grouping=True), "latest": date_format(latest, "SHORT_DATE_FORMAT")}


def _paid_at(paid_on: datetime.date, now: datetime.datetime) -> datetime.datetime:
    return now if paid_on == local_today(now) else local_midnight(paid_on)


BULK_ACTIONS: dict[str, BulkAction] = {
    "mark_paid": BulkAction(
        label=gettext_lazy("Mark as paid"),
        title=gettext_lazy("Mark orders as paid"),
        explanation=gettext_lazy(
            "The orders are closed as paid and leave the open payments; no reminder goes to them any more."
        ),
        form_class=forms.MarkPaidForm,
        check=_payment_day_check,
        run=lambda ids, data, user, now: order_services.orders_mark_paid(
            order_ids=ids, paid_at=_paid_at(data["paid_on"], now), user=user, now=now
        ),
        done_message=lambda n: (
            ngettext("%(count)s order marked as paid.", "%(count)s orders marked as paid.", n) % {"count": grouped(n)}
        ),
    ),
    "block": BulkAction(
        label=gettext_lazy("Block dunning"),
        title=gettext_lazy("Block dunning"),
        explanation=gettext_lazy(
            "Blocked orders get no reminders and are never cancelled automatically until they are unblocked."
        ),
        form_class=forms.BlockForm,
        run=lambda ids, data, user, now: order_services.orders_block_dunning(
            order_ids=ids, reason=data["reason"], user=user, now=now
        ),
        done_message=lambda n: (
            ngettext("Dunning blocked for %(count)s order.", "Dunning blocked for %(count)s orders.", n)
            % {"count": grouped(n)}
        ),
    ),
    "unblock": BulkAction(
        label=gettext_lazy("Unblock dunning"),
        title=gettext_lazy("Unblock dunning"),
        explanation=gettext_lazy("The orders can be reminded again (manually or by the automatic job)."),
        form_class=forms.ActionForm,
        run=lambda ids, data, user, now: order_services.orders_unblock_dunning(order_ids=ids, user=user, now=now),
        done_message=lambda n: (
            ngettext("Dunning unblocked for %(count)s order.", "Dunning unblocked for %(count)s orders.", n)
            % {"count": grouped(n)}
        ),
    ),
    "cancel": BulkAction(
        label=gettext_lazy("Cancel orders"),
        title=gettext_lazy("Cancel flagged prepayment orders"),
        explanation=gettext_lazy(
            "Only prepayment orders flagged for cancellation are cancelled; any other "
            "order of the selection is skipped."
        ),
        form_class=forms.CancelForm,
        run=lambda ids, data, user, now: order_services.orders_cancel(
            order_ids=ids, release_reservation=data["release_reservation"], user=user, now=now
        ),
        done_message=lambda n: (
            ngettext("%(count)s order cancelled.", "%(count)s orders cancelled.", n) % {"count": grouped(n)}
        ),
        danger=True,
        order_label=gettext_lazy("Cancel order"),
    ),
    "clear_flag": BulkAction(
        label=gettext_lazy("Clear cancellation flag"),
        title=gettext_lazy("Clear the cancellation flag"),
        explanation=gettext_lazy(
            "The orders are no longer flagged for cancellation. The automatic job may "
            "flag them again unless dunning is blocked."
        ),
        form_class=forms.ActionForm,
        run=lambda ids, data, user, now: order_services.orders_clear_cancellation_flag(
            order_ids=ids, user=user, now=now
        ),
        done_message=lambda n: (
            ngettext(
                "Cancellation flag cleared for %(count)s order.", "Cancellation flag cleared for %(count)s orders.", n
            )
            % {"count": grouped(n)}
        ),
    ),
}


def actions_for(order: Order) -> list[str]:
    """The keys of the bulk actions that make sense for this one order (its page's buttons)."""
    if not order.is_open:
        return []
    keys = ["mark_paid", "unblock" if order.dunning_blocked else "block"]
    if order.flagged_for_cancellation_at:
        if order.payment_method.is_prepayment:
            keys.append("cancel")
        keys.append("clear_flag")
    return keys
