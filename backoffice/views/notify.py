"""Notify: the confirmation (counts, skip reasons, templates, a preview), sending inline or queued
to the worker, and the run's result page."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_http_methods

from common.formats import grouped
from dunning.models import DunningLevel, DunningRun, Reminder
from dunning.selectors import Skip, active_configs
from dunning.services import QUEUE_FAILED, letter_batch_create, notify_queue, orders_notify
from orders.models import Order

from ..filters import OpenOrderFilter
from ..permissions import back_office_required
from ..selectors import notify_plan, run_progress
from .letters import LIVE
from .selection import bad_request, next_url, read_selection


@back_office_required
@require_http_methods(["GET", "POST"])
def notify(request: HttpRequest) -> HttpResponse:
    data = request.POST if request.method == "POST" else request.GET
    level = DunningLevel.from_param(data.get("dunning_level"))
    if level is None or not level.is_sendable:
        return bad_request(request, _("Notify needs the dunning level filter set to level 1, 2 or 3."))
    now = timezone.now()
    configs = active_configs()
    selection, refusal = read_selection(
        request, data, now=now, configs=configs, empty_url=OpenOrderFilter.list_url(data)
    )
    if refusal is not None:
        return refusal
    if request.method == "GET":
        plan = notify_plan(selection.queryset(), level=level, now=now, configs=configs)
        return render(
            request,
            "backoffice/notify_confirm.html",
            {
                "plan": plan,
                "level": level,
                "selection": selection,
                "filter_params": OpenOrderFilter.params(data),
                "next": data.get("next", ""),
                "back_url": next_url(request, data),
                "overview_url": OpenOrderFilter.list_url(data),
                "async_threshold": settings.DUNNING_ASYNC_NOTIFY_THRESHOLD,
                "runs_async": plan.selected > settings.DUNNING_ASYNC_NOTIFY_THRESHOLD,
            },
        )
    order_ids = selection.order_ids()
    if not order_ids:
        messages.warning(request, _("No orders match the selection any more; nothing was sent."))
        return redirect(OpenOrderFilter.list_url(data))
    if len(order_ids) > settings.DUNNING_ASYNC_NOTIFY_THRESHOLD:
        run = notify_queue(order_ids=order_ids, level=level.value, user=request.user, now=now)
        if (run.details or {}).get(QUEUE_FAILED):
            messages.error(
                request,
                _(
                    "The task queue is unreachable, so the reminders could not be queued. "
                    "Nothing was sent. Please try again later or tell support."
                ),
            )
        else:
            messages.info(
                request,
                ngettext(
                    "%(count)s order queued; the reminders are sent in the background.",
                    "%(count)s orders queued; the reminders are sent in the background.",
                    len(order_ids),
                )
                % {"count": grouped(len(order_ids))},
            )
    else:
        run, _outcome = orders_notify(order_ids=order_ids, level=level.value, user=request.user, now=now)
        if data.get("letters") == "1":  # "send and make all letters as one PDF" (a large run: its result page)
            ids = list(Reminder.objects.filter(run=run, status__in=LIVE).order_by("order__number", "id")
                       .values_list("id", flat=True))
            if ids:
                batch = letter_batch_create(reminder_ids=ids, user=request.user, now=timezone.now())
                return redirect("backoffice:letter_batch", pk=batch.pk)
    return redirect(reverse("backoffice:notify_run", args=[run.pk]) + OpenOrderFilter.query(data))


@back_office_required
def notify_run(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(DunningRun.objects.select_related("started_by"), pk=pk)
    details = run.details or {}
    progress = run_progress(run.pk)
    skipped_ids = {int(k): v for k, v in (details.get("skipped_orders") or {}).items()}
    numbers = dict(Order.objects.filter(id__in=skipped_ids).values_list("id", "number")) if skipped_ids else {}
    skipped_orders = [
        {"id": i, "number": numbers.get(i, i), "reason": Skip.label_of(r)} for i, r in sorted(skipped_ids.items())
    ]
    reminders = Reminder.objects.filter(run=run).select_related("order").order_by("order__number")
    problems = list(reminders.exclude(status=Reminder.Status.SENT)[:200]) if run.is_finished else []
    sent_reminders = list(reminders.filter(status=Reminder.Status.SENT)[:200]) if run.is_finished else []
    return render(
        request,
        "backoffice/notify_run.html",
        {
            "run": run,
            "level": details.get("level"),
            "selected": details.get("selected"),
            "progress_done": sum(progress.values()),
            "progress": progress,
            "skip_counts": [(Skip.label_of(code), n) for code, n in sorted((details.get("skipped") or {}).items())],
            "skipped_orders": skipped_orders,
            "unknown": details.get("unknown", 0),
            "failed_errors": details.get("failed_errors") or [],
            "problems": problems,
            "sent_reminders": sent_reminders,
            "queue_failed": bool(details.get(QUEUE_FAILED)),
            "back_url": OpenOrderFilter.list_url(request.GET),
            "refresh": not run.is_finished,
        },
    )
