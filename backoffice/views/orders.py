"""The order page: its level, reminders (with "mark sent" / "mark failed" for one whose outcome is
unknown), the audit trail and the actions that apply to it."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
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
from orders.audit import order_event_label, order_event_sentence
from orders.models import Order
from orders.services import OrderActionRefused, order_change_email, order_mark_paid_undo, undoable_mark_paid
from payments.selectors import order_payments_summary

from ..bulk_actions import BULK_ACTIONS, actions_for
from ..permissions import back_office_required
from ..selectors import level_of
from .selection import bad_request


class EmailForm(forms.Form):
    customer_email = forms.CharField(label=_("Customer e-mail"), max_length=254,
                                     widget=forms.EmailInput(attrs={"size": 32, "autocomplete": "off"}))


@back_office_required
def order_detail(request: HttpRequest, pk: int) -> HttpResponse:
    order = get_object_or_404(Order.objects.select_related("sales_account", "payment_method"), pk=pk)
    return _order_page(request, order)


def _order_page(request: HttpRequest, order: Order, *, email_form: EmailForm | None = None) -> HttpResponse:
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
    events = list(order.events.select_related("user"))
    for event in events:
        event.label = order_event_label(event.action)
        event.sentence = order_event_sentence(event.action, event.details, currency=order.currency)
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
            "events": events,
            "actions": [
                (key, BULK_ACTIONS[key].order_label or BULK_ACTIONS[key].label) for key in actions_for(order)
            ],
            "stale_minutes": int(stale_after().total_seconds() // 60),
            "payments": order_payments_summary(order),
            "undo_paid": undoable_mark_paid(order),
            "email_form": email_form or EmailForm(initial={"customer_email": order.customer_email}),
            "letter_problems": letter_problems(order),
        },
        status=400 if email_form is not None else 200,
    )


@back_office_required
@require_POST
def order_undo_paid(request: HttpRequest, pk: int) -> HttpResponse:
    order = get_object_or_404(Order, pk=pk)
    try:
        order = order_mark_paid_undo(order_id=order.pk, user=request.user, now=timezone.now())
    except OrderActionRefused as exc:
        messages.error(request, str(exc))
    else:
        level = level_of(order, now=timezone.now(), configs=active_configs())
        messages.success(request, _("“Paid” taken back: the order is open again (%(level)s).")
                         % {"level": DunningLevel(level).label if level else _("no dunning level yet")})
    return redirect("backoffice:order_detail", pk=order.pk)


@back_office_required
@require_POST
def order_email(request: HttpRequest, pk: int) -> HttpResponse:
    order = get_object_or_404(Order.objects.select_related("sales_account", "payment_method"), pk=pk)
    form = EmailForm(request.POST)
    if form.is_valid():
        try:
            changed = order_change_email(order_id=order.pk, email=form.cleaned_data["customer_email"],
                                         user=request.user, now=timezone.now())
        except ValidationError as exc:
            form.add_error("customer_email", exc)
        else:
            if changed:
                messages.success(request, _("The e-mail address was corrected; the next reminder goes to %(email)s.")
                                 % {"email": form.cleaned_data["customer_email"].strip()})
            else:
                messages.info(request, _("The e-mail address was already that one; nothing was changed."))
            return redirect("backoffice:order_detail", pk=order.pk)
    return _order_page(request, order, email_form=form)


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
