"""The overview's filtered list as a CSV or Excel file (backoffice.export): the same filter and sort
as the page, in the formats of the page's language."""

from __future__ import annotations

from django.http import FileResponse, HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from common.dates import local_today
from dunning.selectors import active_configs

from .. import export
from ..filters import OpenOrderFilter
from ..permissions import back_office_required
from ..selectors import open_orders
from .selection import bad_request

CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@back_office_required
@require_GET
def export_orders(request: HttpRequest) -> HttpResponse:
    kind = request.GET.get("format", "")
    if kind not in CONTENT_TYPES:
        return bad_request(request, _("Choose CSV or Excel as the export format."))
    now = timezone.now()
    today = local_today(now)
    configs = active_configs()
    filterset = OpenOrderFilter(request.GET, queryset=open_orders(now=now, configs=configs), now=now, configs=configs)
    if filterset.is_bound and not filterset.is_valid():
        # the overview ignores an invalid filter with a warning; a file would silently hold more
        return bad_request(request, _("Some filters are invalid; correct them on the overview, then export."))
    queryset = filterset.qs
    fmt = export.ExportFormat(german=(get_language() or "").startswith("de"))
    filename = f"{_('open-payments')}-{today.isoformat()}.{kind}"
    if kind == "csv":
        response = StreamingHttpResponse(
            export.csv_chunks(queryset, today=today, fmt=fmt), content_type=CONTENT_TYPES[kind])
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response
    if queryset.order_by().values("pk")[: export.XLSX_MAX_ROWS + 1].count() > export.XLSX_MAX_ROWS:
        limit = number_format(export.XLSX_MAX_ROWS, force_grouping=True)
        return bad_request(request, _("More orders than an Excel sheet holds (%(max)s rows): export them as CSV "
                                      "or narrow the filter.") % {"max": limit})
    handle = export.xlsx_file(queryset, today=today, fmt=fmt, title=_("Open payments"))
    return FileResponse(handle, as_attachment=True, filename=filename, content_type=CONTENT_TYPES[kind])
