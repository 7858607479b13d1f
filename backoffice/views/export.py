"""The overview's filtered list as a CSV or Excel file (backoffice.export): the same filter and sort
as the page, in the formats of the page's language."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.http import FileResponse, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from common.dates import local_today

from .. import export
from ..export_jobs import export_job_create, export_job_filename, filtered_orders
from ..models import ExportJob
from ..permissions import back_office_required
from .selection import bad_request, stored_file_response

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
    queryset = filtered_orders(request.GET, now=now)
    if queryset is None:
        return bad_request(request, _("Some filters are invalid; correct them on the overview, then export."))
    language = get_language() or settings.LANGUAGE_CODE
    fmt = export.ExportFormat(german=language.startswith("de"))
    filename = f"{_('open-payments')}-{today.isoformat()}.{kind}"
    if kind == "csv":
        response = StreamingHttpResponse(
            export.csv_chunks(queryset, today=today, fmt=fmt), content_type=CONTENT_TYPES[kind])
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response
    rows = queryset.order_by().values("pk")[: export.XLSX_MAX_ROWS + 1].count()
    if rows > export.XLSX_MAX_ROWS:
        limit = number_format(export.XLSX_MAX_ROWS, force_grouping=True)
        return bad_request(request, _("More orders than an Excel sheet holds (%(max)s rows): export them as CSV "
                                      "or narrow the filter.") % {"max": limit})
    if rows > settings.EXPORT_ASYNC_XLSX_ROWS:
        job = export_job_create(data=request.GET, language=language, total=rows, user=request.user, now=now)
        return redirect("backoffice:export_job", pk=job.pk)
    handle = export.xlsx_file(queryset, today=today, fmt=fmt, title=_("Open payments"))
    return FileResponse(handle, as_attachment=True, filename=filename, content_type=CONTENT_TYPES[kind])


@back_office_required
def export_job(request: HttpRequest, pk: int) -> HttpResponse:
    """A large Excel export: progress while the worker writes it, then the download."""
    job = get_object_or_404(ExportJob, pk=pk)
    query = urlencode([tuple(pair) for pair in job.params])
    return render(request, "backoffice/export_job.html", {
        "job": job,
        "refresh": not job.is_finished,
        "file_url": reverse("backoffice:export_job_file", args=[job.pk]) if job.file else "",
        "overview_url": reverse("backoffice:open_payments") + (f"?{query}" if query else ""),
    })


@back_office_required
def export_job_file(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(ExportJob, pk=pk)
    return stored_file_response(
        request, job.file, filename=export_job_filename(job), content_type=CONTENT_TYPES["xlsx"],
        not_ready=_("The export is not ready yet."),
        gone=_("The file of this export no longer exists. Export the list again from the overview."))
