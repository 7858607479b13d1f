from django.db import models
from django.utils.translation import gettext_lazy as _

from common.models import FileJob


class ExportJob(FileJob):
    """A large Excel export of the overview, written by the worker (backoffice.export_jobs): the
    overview's filter as it was requested, the language of the page, progress, then the file."""

    KEEP_DAYS_SETTING = "EXPORT_JOBS_KEEP_DAYS"

    params = models.JSONField(_("filter"), default=list)  # the overview's query, as (name, value) pairs
    language = models.CharField(_("language"), max_length=10)
    total = models.PositiveIntegerField(_("rows"), default=0)
    done = models.PositiveIntegerField(_("rows written"), default=0)
    file = models.FileField(_("file"), upload_to="exports/", blank=True)

    class Meta:
        verbose_name = _("export")
        verbose_name_plural = _("exports")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.total} rows {self.created_at:%Y-%m-%d %H:%M}"
