"""The order page: its level, reminders (with "mark sent" / "mark failed" for one whose outcome is
unknown), the audit trail and the actions that apply to it."""

from __future__ import annotations

from decimal import Decimal

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from common.dates import local_date, local_today
from dunning.letters import letter_problems
from dunning.models import DunningLevel, Reminder
from dunning.selectors import active_configs, order_claim_on, stale_after
from dunning.services import ReminderNotPending, ReminderStillInFlight, reminder_mark_failed, reminder_mark_sent
from orders.models import Order
from payments.selectors import order_payments_summary

from ..bulk_actions import BULK_ACTIONS, actions_for
from ..permissions import back_office_required
from ..selectors import level_of
from .selection import bad_request


@back_office_required
def order_detail(request: HttpRequest, pk: int) -> HttpResponse:
    order = get_object_or_404(Order.objects.select_related("sales_account", "payment_method"), pk=pk)
    now = timezone.now()
    today = local_today(now)
    configs = active_configs()
    level = level_of(order, now=now, configs=configs) if order.is_open else None
    reminders = list(order.reminders.select_related("sent_by", "template").order_by("-created_at", "-id"))
    stale_before = now - stale_after()
    claim, _deadline = order_claim_on(order, now=now) if order.is_open else (None, None)
    for reminder in reminders:
        # the claim the reminder stated, frozen when it was sent (empty for reminders sent before)
        reminder.claim_figures = {k: Decimal(v) for k, v in reminder.claim_snapshot.items()} or None
        reminder.outcome_unknown = reminder.status == Reminder.Status.PENDING and reminder.created_at < stale_before
        reminder.in_flight = reminder.status == Reminder.Status.PENDING and not reminder.outcome_unknown
    return render(
        request,
        "backoffice/order_detail.html",
        {
            "order": order,
            "claim": claim,
            "level": level,
            "notify_level": level if level in DunningLevel.sendable() else None,
            "days_overdue": order.days_overdue(today),
            "ordered_on": local_date(order.ordered_at),
            "reminders": reminders,
            "unknown_reminders": [r for r in reminders if r.outcome_unknown],
            "events": list(order.events.select_related("user")),
            "actions": [
                (key, BULK_ACTIONS[key].order_label or BULK_ACTIONS[key].label) for key in actions_for(order)
            ],
            "stale_minutes": int(stale_after().total_seconds() // 60),
            "payments": order_payments_summary(order),
            "letter_problems": letter_problems(order),
        },
    )


@back_office_required
@require_POST
def reminder_resolve(request: HttpRequest, pk: int) -> HttpResponse:
    reminder = get_object_or_404(Reminder, pk=pk)
    outcome = request.POST.get("outcome")
    services = {"sent": reminder_mark_sent, "failed": reminder_mark_failed}
    if outcome not in services:
        return bad_request(request, _("Choose whether the reminder was sent or failed."))
    try:
        services[outcome](reminder_id=reminder.pk, user=request.user, now=timezone.now())
    except ReminderNotPending:
        messages.warning(request, _("This reminder is no longer in flight; nothing was changed."))
    except ReminderStillInFlight:
        messages.warning(
            request,
            _("This reminder was handed to the e-mail provider less than %(minutes)d minutes ago and may "
              "still be on its way; wait before settling it.")
            % {"minutes": int(stale_after().total_seconds() // 60)},
        )
    else:
        if outcome == "sent":
            messages.success(request, _("The reminder was marked as sent; the order moved up to its level."))
        else:
            messages.success(request, _("The reminder was marked as failed; it will be sent again."))
    return redirect("backoffice:order_detail", pk=reminder.order_id)
