"""Large Excel exports in the worker: an xlsx file is written whole before its first byte can be
sent (a zip file), so an export of more than EXPORT_ASYNC_XLSX_ROWS rows would hold the browser
(and a reverse proxy's read timeout) for minutes with nothing to show. Such an export is an
ExportJob instead: the overview's filter as requested, its language and its moment, rendered by
the worker (`backoffice.tasks.render_export`) with progress every 2,000 rows, and a page that
refreshes itself until the download is there. The rows are the overview's at the moment the
export was asked for (`now` = the job's creation), as the inline export gives them.

Jobs are kept EXPORT_JOBS_KEEP_DAYS days (`export_jobs_purge`, sent by beat daily), then the row
and the file are deleted. A redelivered task whose job is finished does nothing; one whose job is
half done writes it again."""

from __future__ import annotations

import datetime
import logging

from django.core.files import File
from django.db import transaction
from django.db.models import QuerySet
from django.http import QueryDict
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from common.dates import local_date
from common.retention import purge_with_files, queue_after_commit
from dunning.selectors import active_configs

from . import export
from .filters import OpenOrderFilter
from .models import ExportJob
from .selectors import open_orders

logger = logging.getLogger(__name__)
EXPORT_TASK = "backoffice.tasks.render_export"


def filtered_orders(data: QueryDict, *, now: datetime.datetime) -> QuerySet | None:
    """The overview's rows for `data` (its query string) at `now`, in its sort; None when a filter
    is invalid (the overview ignores it with a warning; a file would silently hold more)."""
    configs = active_configs()
    filterset = OpenOrderFilter(data, queryset=open_orders(now=now, configs=configs), now=now, configs=configs)
    if filterset.is_bound and not filterset.is_valid():
        return None
    return filterset.qs


def export_job_create(*, data: QueryDict, language: str, total: int, user, now: datetime.datetime) -> ExportJob:
    """Record an export of the overview filtered by `data` and queue it for the worker (after commit)."""
    params = [[name, value] for name, values in data.lists() if name != "format" for value in values]
    with transaction.atomic():
        job = ExportJob.objects.create(params=params, language=language, created_by=user, created_at=now,
                                       total=total)
        queue_after_commit(EXPORT_TASK, job, job_id=job.pk)
    return job


def export_job_filename(job: ExportJob) -> str:
    with translation.override(job.language):
        return f"{_('open-payments')}-{local_date(job.created_at).isoformat()}.xlsx"


def export_job_render(*, job_id: int) -> None:
    """Write the job's xlsx file, recording progress; an error is recorded on the job."""
    job = ExportJob.objects.filter(pk=job_id).first()
    if job is None or job.finished_at is not None:
        return
    data = QueryDict(mutable=True)
    for name, value in job.params:
        data.appendlist(name, value)

    written = [0]

    def progress(done: int) -> None:
        written[0] = done
        ExportJob.objects.filter(pk=job_id).update(done=done)

    try:
        with translation.override(job.language):
            queryset = filtered_orders(data, now=job.created_at)
            if queryset is None:
                raise ValueError(_("Some filters are invalid; correct them on the overview, then export."))
            fmt = export.ExportFormat(german=job.language.startswith("de"))
            handle = export.xlsx_file(queryset, today=local_date(job.created_at), fmt=fmt,
                                      title=_("Open payments"), progress=progress)
        with handle:
            name = job.file.storage.save(f"exports/export-{job_id}.xlsx", File(handle))
    except Exception as exc:
        logger.exception("export %s failed", job_id)
        ExportJob.objects.filter(pk=job_id).update(finished_at=timezone.now(),
                                                   error=f"{type(exc).__name__}: {exc}"[:2000])
        return
    saved = ExportJob.objects.filter(pk=job_id, finished_at__isnull=True).update(
        file=name, done=written[0], total=written[0], finished_at=timezone.now())
    if not saved:  # finished meanwhile by a redelivered task: keep its file, drop this one
        job.file.storage.delete(name)


def export_jobs_purge(*, now: datetime.datetime) -> int:
    """Delete the jobs created more than EXPORT_JOBS_KEEP_DAYS days before `now`, with their files;
    returns how many."""
    return purge_with_files(ExportJob, file_field="file", now=now)
