"""Abstract models shared by several apps."""

from __future__ import annotations

import datetime
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class FileJob(models.Model):
    """A file made in the background (letter batches, Excel exports): who asked for it and when,
    when it was finished or why it failed. `common.retention` queues its task (a broker that cannot
    be reached finishes it with that error) and deletes it `keep_days()` days after `created_at`,
    the number of days being the setting named by KEEP_DAYS_SETTING."""

    KEEP_DAYS_SETTING: ClassVar[str]

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   verbose_name=_("created by"))
    created_at = models.DateTimeField(_("created at"))
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)

    class Meta:
        abstract = True

    @property
    def is_finished(self) -> bool:
        return self.finished_at is not None

    @classmethod
    def keep_days(cls) -> int:
        return getattr(settings, cls.KEEP_DAYS_SETTING)

    @property
    def keep_until(self) -> datetime.datetime:
        """When the purge deletes it (with its file)."""
        return self.created_at + datetime.timedelta(days=self.keep_days())
