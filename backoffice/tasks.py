"""Celery tasks of the back office: thin wrappers that take ids and call a service."""

from celery import shared_task
from django.utils import timezone

from . import export_jobs


@shared_task(name=export_jobs.EXPORT_TASK, acks_late=True)
def render_export(*, job_id: int) -> None:
    """A large Excel export of the overview; its ExportJob was created by `export_job_create`."""
    export_jobs.export_job_render(job_id=job_id)


@shared_task(name="backoffice.tasks.purge_export_jobs")
def purge_export_jobs() -> int:
    """Sent by beat daily: exports older than EXPORT_JOBS_KEEP_DAYS deleted with their files."""
    return export_jobs.export_jobs_purge(now=timezone.now())
