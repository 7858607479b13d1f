"""The open-payments overview: level tabs with counts, the one FilterSet, filter chips, sortable
columns, 50 rows a page."""

from __future__ import annotations

import datetime
from typing import Any

from django.db.models import Exists
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import pgettext_lazy

from common.dates import local_today
from dunning.models import DunningLevel, EmailTemplate
from dunning.reporting import AgeBucket
from dunning.selectors import active_configs, claims_today, level_of_loaded
from orders.services import RULES

from ..bulk_actions import BULK_ACTIONS
from ..filters import (
    LEVEL_FILTER_CHOICES,
    PAID_WITHIN_CHOICES,
    REMINDER_FILTERS,
    REMINDER_LEVEL_CHOICES,
    SELECTION_PARAMS,
    STATE_CHOICES,
    STATE_OPEN,
    YES_NO,
    OpenOrderFilter,
)
from ..overview_rows import header_cells, rows_html
from ..permissions import back_office_required
from ..selectors import CappedPaginator, closed_orders_matching, level_totals, open_orders, page_rows
from .selection import MAX_SELECTED_IDS

PAGE_SIZE = 50
CLOSED_SHOWN = 20  # paid or cancelled orders a search shows beside the open ones

COLUMNS = [
    # (sort parameter or "", label, css class); own msgids: German headers carry soft hyphens
    ("number", pgettext_lazy("column", "Number"), "col-number"),
    ("ordered_at", pgettext_lazy("column", "Order date"), "col-date"),
    ("customer", pgettext_lazy("column", "Customer"), "col-customer"),
    ("email", pgettext_lazy("column", "E-mail"), "col-email"),
    ("total", pgettext_lazy("column", "Amount"), "col-amount num"),
    ("", pgettext_lazy("column", "Total due"), "col-due num"),
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
        header = {"label": label, "css": css, "param": param, "direction": "", "next": "", "title": ""}
        if param == "total":
            header["title"] = _("Sorted by currency first, then by amount")
        if param:
            if active == param:
                header["direction"], header["next"] = "asc", f"-{param}"
            elif active == f"-{param}":
                header["direction"], header["next"] = "desc", param
            else:
                header["next"] = param
        headers.append(header)
    return headers


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
    levels = {level.param: str(level.value) if level.is_sendable else level.label for level in DunningLevel}
    labels = {"dunning_level": levels, "blocked": dict(YES_NO), "flagged": dict(YES_NO),
              "age": dict(AgeBucket.choices), "state": dict(STATE_CHOICES), "paid_within": dict(PAID_WITHIN_CHOICES),
              "reminded_level": dict(REMINDER_LEVEL_CHOICES)}
    template = cleaned.get("template")
    if template and template != "none":  # its name (one query, only with this filter)
        labels["template"] = {template: EmailTemplate.objects.filter(pk=template).values_list("name", flat=True)
                              .first() or template}
    elif template == "none":
        labels["template"] = {"none": _("(template deleted)")}
    chips = []
    for name in OpenOrderFilter.FILTER_NAMES:
        value = cleaned.get(name)
        if value in (None, ""):
            continue
        if isinstance(value, datetime.date):
            value = date_format(value, "SHORT_DATE_FORMAT")
        shown = labels[name].get(value, value) if name in labels else value
        if name == "currency":
            shown = value.upper()
        chips.append(
            {
                "name": name,
                "label": filterset.filters[name].label,
                "value": str(shown),
                "remove": OpenOrderFilter.query_without(data, name),
            }
        )
    return chips


@back_office_required
def open_payments(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    today = local_today(now)
    configs = active_configs()
    # the level of the page's rows is computed in Python (`level_of_loaded`); the queryset carries
    # it (a CASE of four levels, costly to build and compile) only to sort by it
    by_level = OpenOrderFilter.sorts_by_level(request.GET)
    base = open_orders(now=now, configs=configs, with_level=by_level)  # built once
    filterset = OpenOrderFilter(request.GET, queryset=base, now=now, configs=configs, with_level=by_level)
    level = filterset.level
    # the tab counts and the money per currency, in one query (from the open orders' totals the
    # database keeps when the filters and the configs allow)
    totals = level_totals(filterset.qs_without("dunning_level"), now=now, configs=configs,
                          open_only=filterset.list_state == STATE_OPEN, where=filterset.totals_where())
    counts, sums = totals.counts, totals.sums
    # the select boxes' accounts and payment methods, read now: the rows take theirs from them
    accounts = {a.pk: a for a in filterset.form.fields["sales_account"].queryset}
    methods = {m.pk: m for m in filterset.form.fields["payment_method"].queryset}
    paginator = CappedPaginator(
        filterset.qs,
        PAGE_SIZE,
        # filtered by level, the list is exactly that level's tab, else all the tabs: its count
        # is known already
        known_count=counts[level] if level is not None else totals.all_count,
        rows=lambda ids: page_rows(ids, now=now, accounts=accounts, methods=methods),
        # cancel applies to flagged prepayment orders only: offered when the list holds one (a
        # column of the page's ids query; an empty list holds none)
        list_columns={"can_cancel": Exists(filterset.qs.filter(RULES["cancel"].eligible))},
    )
    page = paginator.get_page(request.GET.get("page"))
    orders = list(page.object_list)
    # today's claim of the page's rows only (fees, interest, payments): 1 or 2 queries more,
    # whatever the rows (the base rates; the payments of the rows partly paid); the first
    # deadlines and what payments cover come with the rows
    claims = claims_today(orders, on=today, configs=configs, annotated=True)
    level_of = level_of_loaded(now=now, configs=configs)
    for order in orders:
        order.current_level = level_of(order)
        # a paid or cancelled order (the list widened by `?state=`) is due and overdue no more
        is_open = order.paid_at is None and order.cancelled_at is None
        order.claim = claims[order.pk] if is_open else None
        order.overdue = order.days_overdue(today) if is_open else None
        order.due_in = -order.overdue if order.overdue is not None and order.overdue < 0 else 0
    ordering = filterset.form.cleaned_data.get("o") or []
    headers = _sort_headers(ordering)
    # back from "Apply" without an action: the same orders ticked again (bulk.py)
    checked = {int(v) for v in request.GET.getlist("ids")[:MAX_SELECTED_IDS] if v.isdigit()}
    clean_query = request.GET.copy()
    for name in SELECTION_PARAMS:
        clean_query.pop(name, None)
    # a search also finds paid and cancelled orders ("I have paid", on the phone): shown apart
    search = (filterset.form.cleaned_data.get("q") or "").strip()
    closed = list(closed_orders_matching(search)[: CLOSED_SHOWN + 1]) if search else []
    can_cancel = bool(paginator.list_values["can_cancel"])
    filter_params = OpenOrderFilter.params(request.GET)
    export_params = QueryDict(mutable=True)
    for name, value in [*filter_params, *(("o", v) for v in request.GET.getlist("o") if v)]:
        export_params.appendlist(name, value)
    return render(
        request,
        "backoffice/open_payments.html",
        {
            "filterset": filterset,
            "page": page,
            "paginator": paginator,
            "orders": orders,
            "level": level,
            "notify_enabled": level is not None and level.is_sendable,
            "level_tabs": [
                {
                    "value": value,
                    "label": label,
                    "count": counts[DunningLevel.from_param(value)],
                    "sums": sums[DunningLevel.from_param(value)],
                    "active": value == request.GET.get("dunning_level"),
                }
                for value, label in LEVEL_FILTER_CHOICES
            ],
            "sums": sums[level] if level is not None else totals.all_sums,
            "all_sums": totals.all_sums,
            "chips": _chips(filterset, request.GET),
            "filter_errors": _filter_errors(filterset),
            "page_range": paginator.get_elided_page_range(page.number, on_each_side=2, on_ends=1),
            "headers": headers,
            "header_html": header_cells(headers, request.GET),
            "filter_params": filter_params,
            "actions": [(key, action.label, key == "cancel" and not can_cancel)
                        for key, action in BULK_ACTIONS.items()],
            "checked_ids": checked,
            "rows_html": rows_html(orders, checked_ids=checked),
            "search": search,
            "closed_orders": closed[:CLOSED_SHOWN],
            "closed_more": len(closed) > CLOSED_SHOWN,
            "select_across_checked": request.GET.get("select_across") == "1",
            "missing_action": request.GET.get("missing_action") == "1",
            "self_url": request.path + (f"?{clean_query.urlencode()}" if clean_query else ""),
            "has_filters": bool(filter_params),
            "export_query": f"&{export_params.urlencode()}" if export_params else "",
            "completed_level": DunningLevel.COMPLETED,
            "widened": filterset.list_state != STATE_OPEN,
            "dashboard_hidden": [(name, value) for name in ("state", *REMINDER_FILTERS)
                                 for value in request.GET.getlist(name) if value],
        },
    )
