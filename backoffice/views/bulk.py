"""The bulk actions on a selection of orders: a confirmation page with the action's form, then the
orders service, with counts and skip reasons as messages."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_http_methods

from common.dates import local_today
from common.formats import grouped
from dunning.selectors import active_configs
from orders.services import BulkSkip

from ..bulk_actions import BULK_ACTIONS
from ..filters import OpenOrderFilter
from ..permissions import back_office_required
from .selection import bad_request, next_url, read_selection, skip_summary


@back_office_required
@require_http_methods(["GET", "POST"])
def bulk_action(request: HttpRequest) -> HttpResponse:
    data = request.POST if request.method == "POST" else request.GET
    key = data.get("action", "")
    action = BULK_ACTIONS.get(key)
    if action is None:
        return bad_request(request, _("Choose an action."))
    now = timezone.now()
    configs = active_configs()
    selection, refusal = read_selection(request, data, now=now, configs=configs, empty_url=next_url(request, data))
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
                    "%(count)s order skipped: %(reasons)s", "%(count)s orders skipped: %(reasons)s", len(result.skipped)
                )
                % {"count": grouped(len(result.skipped)),
                   "reasons": skip_summary(result.skip_counts, BulkSkip.label_of)},
            )
        if not result.done and not result.skipped:
            messages.warning(request, _("No orders match the selection any more; nothing was changed."))
        return redirect(next_url(request, data))
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
            "filter_params": OpenOrderFilter.params(data),
            "next": data.get("next", ""),
            "back_url": next_url(request, data),
        },
        status=400 if request.method == "POST" else 200,
    )
