"""The bulk actions on a selection of orders: a confirmation page that says up front which orders the
action changes and which it skips and why (the action's own rule, orders.services.RULES), with the
action's form, then the orders service, with counts and skip reasons as messages. More than
TYPE_COUNT_ABOVE orders: the number must be typed. No action chosen: back to the list with the
selection kept and an inline hint."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_http_methods

from common.dates import local_today
from common.formats import grouped
from dunning.selectors import active_configs
from orders.services import RULES, BulkSkip

from ..bulk_actions import BULK_ACTIONS
from ..filters import SELECTION_PARAMS, OpenOrderFilter
from ..forms import TYPE_COUNT_ABOVE
from ..permissions import back_office_required
from ..selectors import bulk_preview
from .selection import MAX_SELECTED_IDS, bad_request, next_url, read_selection, skip_summary


def _back_with_selection(request: HttpRequest, data: QueryDict) -> str:
    """The page the form came from, with the ticked orders (and "all matching") ticked again and
    the hint that an action is missing."""
    parts = urlsplit(next_url(request, data))
    query = QueryDict(parts.query, mutable=True)
    for name in SELECTION_PARAMS:
        query.pop(name, None)
    for value in data.getlist("ids")[:MAX_SELECTED_IDS]:
        if value.isdigit():
            query.appendlist("ids", value)
    if data.get("select_across") == "1":
        query["select_across"] = "1"
    query["missing_action"] = "1"
    return urlunsplit(parts._replace(query=query.urlencode()))


@back_office_required
@require_http_methods(["GET", "POST"])
def bulk_action(request: HttpRequest) -> HttpResponse:
    data = request.POST if request.method == "POST" else request.GET
    key = data.get("action", "")
    if not key:
        return HttpResponseRedirect(_back_with_selection(request, data))
    action = BULK_ACTIONS.get(key)
    if action is None:
        return bad_request(request, _("Choose an action."))
    now = timezone.now()
    configs = active_configs()
    selection, refusal = read_selection(request, data, now=now, configs=configs, empty_url=next_url(request, data))
    if refusal is not None:
        return refusal
    queryset = selection.queryset()
    if request.method == "POST":
        order_ids = selection.order_ids()
        count = len(order_ids)
        form = action.form_class(data, today=local_today(now),
                                 confirm_count=count if count > TYPE_COUNT_ABOVE else None)
        if form.is_valid():
            problem = action.check(queryset, form.cleaned_data) if action.check else None
            if problem is None:
                return _run(request, data, action, order_ids, form.cleaned_data, now)
            form.add_error(*problem)
    preview = bulk_preview(queryset, RULES[key])
    if request.method != "POST":
        count = preview.selected
        form = action.form_class(today=local_today(now), confirm_count=count if count > TYPE_COUNT_ABOVE else None)
    return render(
        request,
        "backoffice/action_confirm.html",
        {
            "action": action,
            "action_key": key,
            "form": form,
            "count": count,
            "preview": preview,
            "skip_reasons": [(BulkSkip.label_of(reason), n) for reason, n in sorted(preview.skip_counts.items())],
            "selection": selection,
            "filter_params": OpenOrderFilter.params(data),
            "overview_url": OpenOrderFilter.list_url(data) if selection.select_across else "",
            "next": data.get("next", ""),
            "back_url": next_url(request, data),
        },
        status=400 if request.method == "POST" else 200,
    )


def _run(request: HttpRequest, data: QueryDict, action, order_ids: list[int], cleaned: dict, now) -> HttpResponse:
    result = action.run(order_ids, cleaned, request.user, now)
    if result.done:
        messages.success(request, action.done_message(len(result.done)))
    if result.skipped:
        messages.warning(
            request,
            ngettext(
                "%(count)s order skipped: %(reasons)s", "%(count)s orders skipped: %(reasons)s", len(result.skipped)
            )
            % {"count": grouped(len(result.skipped)), "reasons": skip_summary(result.skip_counts, BulkSkip.label_of)},
        )
    if not result.done and not result.skipped:
        messages.warning(request, _("No orders match the selection any more; nothing was changed."))
    return redirect(next_url(request, data))
