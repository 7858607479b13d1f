"""The back-office pages: the open-payments overview, Notify with its confirmation and result,
the bulk actions on orders and the order page. Views read through selectors, write through
services, and turn outcomes into messages."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext, pgettext_lazy
from django.views.decorators.http import require_http_methods, require_POST

from dunning.models import DunningRun, Reminder
from dunning.selectors import active_configs, local_midnight, local_today
from dunning.services import Skip
from orders import services as order_services
from orders.models import Order, local_date

from . import forms
from .filters import LEVEL_FILTER_CHOICES, NOTIFY_LEVELS, YES_NO, OpenOrderFilter, parse_level
from .permissions import back_office_required
from .selectors import (
    CappedPaginator,
    level_counts,
    level_of,
    notify_plan,
    open_orders,
    run_progress,
    stale_after,
    with_badges,
)
from .services import QUEUE_FAILED, notify_and_record, notify_queue

PAGE_SIZE = 50
MAX_SELECTED_IDS = 1000
FILTER_NAMES = ("dunning_level", "sales_account", "payment_method", "blocked", "flagged", "q")


class BadSelection(Exception):
    pass


def _bad_request(request: HttpRequest, message: str) -> HttpResponse:
    return render(
        request, "backoffice/error.html", {"message": message, "back_url": _list_url(request.GET)}, status=400
    )


def _list_url(data: QueryDict) -> str:
    params = QueryDict(mutable=True)
    for name in FILTER_NAMES:
        for value in data.getlist(name):
            if value:
                params.appendlist(name, value)
    url = reverse("backoffice:open_payments")
    return f"{url}?{params.urlencode()}" if params else url


def _next_url(request: HttpRequest, data: QueryDict) -> str:
    candidate = data.get("next", "")
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return _list_url(data)


def _filter_params(data: QueryDict) -> list[tuple[str, str]]:
    return [(name, value) for name in FILTER_NAMES for value in data.getlist(name) if value]


# --- the overview ---------------------------------------------------------------------------

COLUMNS = [
    # (sort parameter or "", label, css class); own msgids: German headers carry soft hyphens
    ("number", pgettext_lazy("column", "Number"), "col-number"),
    ("ordered_at", pgettext_lazy("column", "Order date"), "col-date"),
    ("customer", pgettext_lazy("column", "Customer"), "col-customer"),
    ("email", pgettext_lazy("column", "E-mail"), "col-email"),
    ("total", pgettext_lazy("column", "Amount"), "col-amount num"),
    ("payment_method", pgettext_lazy("column", "Payment method"), "col-method"),
    ("sales_account", pgettext_lazy("column", "Sales account"), "col-account"),
    ("days_overdue", pgettext_lazy("column", "Days overdue"), "col-overdue num"),
    ("reminders_sent", pgettext_lazy("column", "Sent reminders"), "col-sent num"),
    ("last_reminder", pgettext_lazy("column", "Last reminder"), "col-date"),
    ("level", pgettext_lazy("column", "Level"), "col-level"),
    ("", pgettext_lazy("column", "Notes"), "col-notes"),
]


def _sort_headers(current: list[str]) -> list[dict[str, Any]]:
    active = current[0] if current else ""
    headers = []
    for param, label, css in COLUMNS:
        header = {"label": label, "css": css, "param": param, "direction": "", "next": ""}
        if param:
            if active == param:
                header["direction"], header["next"] = "asc", f"-{param}"
            elif active == f"-{param}":
                header["direction"], header["next"] = "desc", param
            else:
                header["next"] = param
        headers.append(header)
    return headers


def _query_without(data: QueryDict, *names: str) -> str:
    params = data.copy()
    for name in (*names, "page"):
        params.pop(name, None)
    encoded = params.urlencode()
    return f"?{encoded}" if encoded else "?"


def _filter_errors(filterset: OpenOrderFilter) -> list[tuple[str, str]]:
    labels = {name: f.label for name, f in filterset.filters.items()}
    return [
        (str(labels.get(name, name)), " ".join(str(e) for e in errors))
        for name, errors in filterset.form.errors.items()
    ]


def _chips(filterset: OpenOrderFilter, data: QueryDict) -> list[dict[str, str]]:
    """The active (valid) filters, each with the query string that removes it."""
    cleaned = filterset.form.cleaned_data if filterset.is_bound and hasattr(filterset.form, "cleaned_data") else {}
    # the chip reads "Dunning level: 1", not "Dunning level: Level 1"
    levels = {"1": "1", "2": "2", "3": "3", "completed": dict(LEVEL_FILTER_CHOICES)["completed"]}
    labels = {"dunning_level": levels, "blocked": dict(YES_NO), "flagged": dict(YES_NO)}
    chips = []
    for name in FILTER_NAMES:
        value = cleaned.get(name)
        if value in (None, ""):
            continue
        shown = labels[name].get(value, value) if name in labels else value
        chips.append(
            {
                "name": name,
                "label": filterset.filters[name].label,
                "value": str(shown),
                "remove": _query_without(data, name),
            }
        )
    return chips


@back_office_required
def open_payments(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    today = local_today(now)
    configs = active_configs()
    base = open_orders(now=now, configs=configs)  # built once: the level annotation is costly to build
    filterset = OpenOrderFilter(request.GET, queryset=base, now=now, configs=configs)
    level = filterset.level
    counts = level_counts(filterset.qs_without("dunning_level"), now=now, configs=configs)
    paginator = CappedPaginator(
        filterset.qs,
        PAGE_SIZE,
        # filtered by level, the list is exactly that level's tab: its count is known already
        known_count=counts[level] if level is not None else None,
        rows=lambda ids: with_badges(base.filter(pk__in=ids), now=now).order_by(),
    )
    page = paginator.get_page(request.GET.get("page"))
    orders = list(page.object_list)
    for order in orders:
        order.overdue = order.days_overdue(today)
    ordering = filterset.form.cleaned_data.get("o") or []
    return render(
        request,
        "backoffice/open_payments.html",
        {
            "filterset": filterset,
            "page": page,
            "paginator": paginator,
            "orders": orders,
            "level": level,
            "notify_enabled": level in (1, 2, 3),
            "level_tabs": [
                {
                    "value": value,
                    "label": label,
                    "count": counts[parse_level(value)],
                    "active": value == request.GET.get("dunning_level"),
                }
                for value, label in LEVEL_FILTER_CHOICES
            ],
            "chips": _chips(filterset, request.GET),
            "filter_errors": _filter_errors(filterset),
            "page_range": paginator.get_elided_page_range(page.number, on_each_side=2, on_ends=1),
            "headers": _sort_headers(ordering),
            "filter_params": _filter_params(request.GET),
            "actions": [(key, action.label) for key, action in BULK_ACTIONS.items()],
            "has_filters": bool(_filter_params(request.GET)),
        },
    )


# --- selections -------------------------------------------------------------------------------


@dataclass
class Selection:
    ids: list[int]
    select_across: bool
    filterset: OpenOrderFilter

    def queryset(self) -> QuerySet[Order]:
        if self.select_across:
            return self.filterset.qs
        return Order.objects.filter(id__in=self.ids)

    def order_ids(self) -> list[int]:
        return list(self.queryset().order_by("id").values_list("id", flat=True))

    @property
    def empty(self) -> bool:
        return not (self.select_across or self.ids)


def _selection(data: QueryDict, *, now: datetime.datetime, configs) -> Selection:
    """The orders a bulk form means: the checked `ids`, or with `select_across` every open order
    matching the filters in the same request."""
    try:
        ids = sorted({int(value) for value in data.getlist("ids") if value})
    except ValueError:
        raise BadSelection(_("Invalid order selection.")) from None
    if len(ids) > MAX_SELECTED_IDS:
        raise BadSelection(_("Too many orders checked; use “all matching this filter” instead."))
    filterset = OpenOrderFilter(data, queryset=open_orders(now=now, configs=configs), now=now, configs=configs)
    return Selection(ids=ids, select_across=data.get("select_across") == "1", filterset=filterset)


def _read_selection(request: HttpRequest, data: QueryDict, *, now: datetime.datetime, configs,
                    empty_url: str) -> tuple[Selection | None, HttpResponse | None]:
    """The selection of a bulk form, or the response refusing it: 400 for a malformed one, back to
    `empty_url` with a message when nothing is selected."""
    try:
        selection = _selection(data, now=now, configs=configs)
    except BadSelection as exc:
        return None, _bad_request(request, str(exc))
    if selection.empty:
        messages.error(request, _("Select at least one order, or all orders matching the filter."))
        return None, redirect(empty_url)
    return selection, None


def _skip_summary(counts: dict[str, int], labels: dict[str, Any]) -> str:
    return "; ".join(f"{labels.get(reason, reason)} ({n})" for reason, n in sorted(counts.items()))


# --- Notify -------------------------------------------------------------------------------------


@back_office_required
@require_http_methods(["GET", "POST"])
def notify(request: HttpRequest) -> HttpResponse:
    data = request.POST if request.method == "POST" else request.GET
    level = parse_level(data.get("dunning_level"))
    if str(level) not in NOTIFY_LEVELS:
        return _bad_request(request, _("Notify needs the dunning level filter set to level 1, 2 or 3."))
    now = timezone.now()
    configs = active_configs()
    selection, refusal = _read_selection(request, data, now=now, configs=configs, empty_url=_list_url(data))
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
                "filter_params": _filter_params(data),
                "next": data.get("next", ""),
                "back_url": _next_url(request, data),
                "async_threshold": settings.DUNNING_ASYNC_NOTIFY_THRESHOLD,
                "runs_async": plan.selected > settings.DUNNING_ASYNC_NOTIFY_THRESHOLD,
            },
        )
    order_ids = selection.order_ids()
    if not order_ids:
        messages.warning(request, _("No orders match the selection any more; nothing was sent."))
        return redirect(_list_url(data))
    if len(order_ids) > settings.DUNNING_ASYNC_NOTIFY_THRESHOLD:
        run = notify_queue(order_ids=order_ids, level=level, user=request.user, now=now)
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
                    "%(count)d order queued; the reminders are sent in the background.",
                    "%(count)d orders queued; the reminders are sent in the background.",
                    len(order_ids),
                )
                % {"count": len(order_ids)},
            )
    else:
        run, _outcome = notify_and_record(order_ids=order_ids, level=level, user=request.user, now=now)
    return redirect(reverse("backoffice:notify_run", args=[run.pk]) + _return_query(data))


def _return_query(data: QueryDict) -> str:
    params = QueryDict(mutable=True)
    for name, value in _filter_params(data):
        params.appendlist(name, value)
    return f"?{params.urlencode()}" if params else ""


@back_office_required
def notify_run(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(DunningRun.objects.select_related("started_by"), pk=pk)
    details = run.details or {}
    progress = run_progress(run.pk)
    skipped_ids = {int(k): v for k, v in (details.get("skipped_orders") or {}).items()}
    numbers = dict(Order.objects.filter(id__in=skipped_ids).values_list("id", "number")) if skipped_ids else {}
    skipped_orders = [
        {"id": i, "number": numbers.get(i, i), "reason": Skip.LABELS.get(r, r)} for i, r in sorted(skipped_ids.items())
    ]
    reminders = Reminder.objects.filter(run=run).select_related("order").order_by("order__number")
    problems = list(reminders.exclude(status=Reminder.Status.SENT)[:200]) if run.is_finished else []
    sent_reminders = list(reminders.filter(status=Reminder.Status.SENT)[:200]) if run.is_finished else []
    list_params = QueryDict(mutable=True)
    for name in FILTER_NAMES:
        for value in request.GET.getlist(name):
            list_params.appendlist(name, value)
    return render(
        request,
        "backoffice/notify_run.html",
        {
            "run": run,
            "level": details.get("level"),
            "selected": details.get("selected"),
            "progress_done": sum(progress.values()),
            "progress": progress,
            "skip_counts": [
                (Skip.LABELS.get(code, code), n) for code, n in sorted((details.get("skipped") or {}).items())
            ],
            "skipped_orders": skipped_orders,
            "unknown": details.get("unknown", 0),
            "failed_errors": details.get("failed_errors") or [],
            "problems": problems,
            "sent_reminders": sent_reminders,
            "queue_failed": bool(details.get(QUEUE_FAILED)),
            "back_url": _list_url(request.GET),
            "refresh": not run.is_finished,
        },
    )


# --- bulk actions -------------------------------------------------------------------------------


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
        run=lambda ids, data, user, now: order_services.orders_mark_paid(
            order_ids=ids, paid_at=_paid_at(data["paid_on"], now), user=user, now=now
        ),
        done_message=lambda n: (
            ngettext("%(count)d order marked as paid.", "%(count)d orders marked as paid.", n) % {"count": n}
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
            ngettext("Dunning blocked for %(count)d order.", "Dunning blocked for %(count)d orders.", n) % {"count": n}
        ),
    ),
    "unblock": BulkAction(
        label=gettext_lazy("Unblock dunning"),
        title=gettext_lazy("Unblock dunning"),
        explanation=gettext_lazy("The orders can be reminded again (manually or by the automatic job)."),
        form_class=forms.ActionForm,
        run=lambda ids, data, user, now: order_services.orders_unblock_dunning(order_ids=ids, user=user, now=now),
        done_message=lambda n: (
            ngettext("Dunning unblocked for %(count)d order.", "Dunning unblocked for %(count)d orders.", n)
            % {"count": n}
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
        done_message=lambda n: ngettext("%(count)d order cancelled.", "%(count)d orders cancelled.", n) % {"count": n},
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
                "Cancellation flag cleared for %(count)d order.", "Cancellation flag cleared for %(count)d orders.", n
            )
            % {"count": n}
        ),
    ),
}


@back_office_required
@require_http_methods(["GET", "POST"])
def bulk_action(request: HttpRequest) -> HttpResponse:
    data = request.POST if request.method == "POST" else request.GET
    key = data.get("action", "")
    action = BULK_ACTIONS.get(key)
    if action is None:
        return _bad_request(request, _("Choose an action."))
    now = timezone.now()
    configs = active_configs()
    selection, refusal = _read_selection(request, data, now=now, configs=configs,
                                         empty_url=_next_url(request, data))
    if refusal is not None:
        return refusal
    form = action.form_class(data if request.method == "POST" else None, today=local_today(now))
    if request.method == "POST" and form.is_valid():
        result = action.run(selection.order_ids(), form.cleaned_data, request.user, now)
        if result.done:
            messages.success(request, action.done_message(len(result.done)))
        if result.skipped:
            messages.warning(
                request,
                ngettext(
                    "%(count)d order skipped: %(reasons)s", "%(count)d orders skipped: %(reasons)s", len(result.skipped)
                )
                % {
                    "count": len(result.skipped),
                    "reasons": _skip_summary(result.skip_counts, order_services.BulkSkip.LABELS),
                },
            )
        if not result.done and not result.skipped:
            messages.warning(request, _("No orders match the selection any more; nothing was changed."))
        return redirect(_next_url(request, data))
    queryset = selection.queryset()
    count = queryset.count()
    sample = list(queryset.select_related("sales_account", "payment_method").order_by("id")[:20])
    return render(
        request,
        "backoffice/action_confirm.html",
        {
            "action": action,
            "action_key": key,
            "form": form,
            "count": count,
            "sample": sample,
            "selection": selection,
            "filter_params": _filter_params(data),
            "next": data.get("next", ""),
            "back_url": _next_url(request, data),
        },
        status=400 if request.method == "POST" else 200,
    )


# --- the order page -------------------------------------------------------------------------------

EVENT_LABELS = {
    "reminder_sent": gettext_lazy("Reminder sent"),
    "marked_paid": gettext_lazy("Marked as paid"),
    "dunning_blocked": gettext_lazy("Dunning blocked"),
    "dunning_unblocked": gettext_lazy("Dunning unblocked"),
    "cancelled": gettext_lazy("Cancelled"),
    "cancellation_flag_cleared": gettext_lazy("Cancellation flag cleared"),
    "reminder_marked_sent": gettext_lazy("In-flight reminder marked as sent"),
    "reminder_marked_failed": gettext_lazy("In-flight reminder marked as failed"),
    "auto_flag": gettext_lazy("Flagged for cancellation (automatic)"),
    "auto_cancel": gettext_lazy("Cancelled (automatic)"),
    "auto_cancel_and_release_reservation": gettext_lazy("Cancelled and reservation released (automatic)"),
}


def _order_actions(order: Order) -> list[str]:
    """The bulk actions that make sense for this one order."""
    if not order.is_open:
        return []
    keys = ["mark_paid", "unblock" if order.dunning_blocked else "block"]
    if order.flagged_for_cancellation_at:
        if order.payment_method.is_prepayment:
            keys.append("cancel")
        keys.append("clear_flag")
    return keys


@back_office_required
def order_detail(request: HttpRequest, pk: int) -> HttpResponse:
    order = get_object_or_404(Order.objects.select_related("sales_account", "payment_method"), pk=pk)
    now = timezone.now()
    today = local_today(now)
    configs = active_configs()
    level = level_of(order, now=now, configs=configs) if order.is_open else None
    reminders = list(order.reminders.select_related("sent_by", "template").order_by("-created_at", "-id"))
    stale_before = now - stale_after()
    for reminder in reminders:
        reminder.outcome_unknown = reminder.status == Reminder.Status.PENDING and reminder.created_at < stale_before
        reminder.in_flight = reminder.status == Reminder.Status.PENDING and not reminder.outcome_unknown
    events = list(order.events.select_related("user"))
    for event in events:
        event.label = EVENT_LABELS.get(event.action, event.action)
    return render(
        request,
        "backoffice/order_detail.html",
        {
            "order": order,
            "level": level,
            "notify_level": level if level in (1, 2, 3) else None,
            "days_overdue": order.days_overdue(today),
            "ordered_on": local_date(order.ordered_at),
            "reminders": reminders,
            "unknown_reminders": [r for r in reminders if r.outcome_unknown],
            "events": events,
            "actions": [
                (key, BULK_ACTIONS[key].order_label or BULK_ACTIONS[key].label) for key in _order_actions(order)
            ],
            "stale_minutes": int(stale_after().total_seconds() // 60),
        },
    )


@back_office_required
@require_POST
def reminder_resolve(request: HttpRequest, pk: int) -> HttpResponse:
    reminder = get_object_or_404(Reminder, pk=pk)
    outcome = request.POST.get("outcome")
    services = {"sent": order_services.reminder_mark_sent, "failed": order_services.reminder_mark_failed}
    if outcome not in services:
        return _bad_request(request, _("Choose whether the reminder was sent or failed."))
    try:
        services[outcome](reminder_id=reminder.pk, user=request.user, now=timezone.now())
    except order_services.ReminderNotPending:
        messages.warning(request, _("This reminder is no longer in flight; nothing was changed."))
    else:
        if outcome == "sent":
            messages.success(request, _("The reminder was marked as sent; the order moved up to its level."))
        else:
            messages.success(request, _("The reminder was marked as failed; it will be sent again."))
    return redirect("backoffice:order_detail", pk=reminder.order_id)
