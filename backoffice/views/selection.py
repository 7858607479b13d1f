"""What every back-office form shares: the orders a bulk form means (checked ids, or all matching
the filters), where to go back to, and the 400 page for a malformed request."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.contrib import messages
from django.db.models import QuerySet
from django.http import FileResponse, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _

from common.formats import grouped
from orders.models import Order

from ..filters import OpenOrderFilter
from ..selectors import open_orders

MAX_SELECTED_IDS = 1000


class BadSelection(Exception):
    pass


def bad_request(request: HttpRequest, message: str, *, status: int = 400) -> HttpResponse:
    return render(
        request,
        "backoffice/error.html",
        {"message": message, "back_url": OpenOrderFilter.list_url(request.GET)},
        status=status,
    )


def stored_file_response(request: HttpRequest, file, *, filename: str, content_type: str, not_ready: str,
                         gone: str) -> HttpResponse:
    """The stored `file` as a download; 400 with `not_ready` while there is none, 410 with `gone`
    when its file was deleted (a purge, or by hand)."""
    if not file:
        return bad_request(request, not_ready)
    try:
        handle = file.open("rb")
    except FileNotFoundError:
        return bad_request(request, gone, status=410)
    return FileResponse(handle, as_attachment=True, filename=filename, content_type=content_type)


def next_url(request: HttpRequest, data: QueryDict) -> str:
    """The `next` of a form when it is a safe local path (it starts with one "/": `redirect` would
    take "9999-12-31" for a view name and fail), else the overview filtered as in `data`."""
    candidate = data.get("next", "")
    if candidate.startswith("/") and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return OpenOrderFilter.list_url(data)


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


def read_selection(
    request: HttpRequest, data: QueryDict, *, now: datetime.datetime, configs, empty_url: str
) -> tuple[Selection | None, HttpResponse | None]:
    """The selection of a bulk form, or the response refusing it: 400 for a malformed one, back to
    `empty_url` with a message when nothing is selected."""
    try:
        selection = _selection(data, now=now, configs=configs)
    except BadSelection as exc:
        return None, bad_request(request, str(exc))
    if selection.empty:
        messages.error(request, _("Select at least one order, or all orders matching the filter."))
        return None, redirect(empty_url)
    return selection, None


def skip_summary(counts: dict[str, int], label_of) -> str:
    return "; ".join(f"{label_of(reason)} ({grouped(n)})" for reason, n in sorted(counts.items()))
