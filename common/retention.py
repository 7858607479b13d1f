"""Rows that carry a file and are kept for a number of days (letter batches, Excel exports), and the
Celery job that writes such a file."""

from __future__ import annotations

import datetime
import logging

from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from .models import FileJob

logger = logging.getLogger(__name__)


def purge_with_files(model: type[FileJob], *, file_field: str, now: datetime.datetime) -> int:
    """Delete the rows of `model` created more than `model.keep_days()` days before `now` and the
    files their `file_field` names; returns how many rows. The rows go first (committed; rows
    another purge holds are skipped), then the files: a file that cannot be deleted is logged and
    left, never a row that points to no file."""
    cutoff = now - datetime.timedelta(days=model.keep_days())
    with transaction.atomic():
        old = list(model.objects.select_for_update(skip_locked=True).filter(created_at__lt=cutoff)
                   .values_list("id", file_field))
        model.objects.filter(id__in=[row_id for row_id, _name in old]).delete()
    for row_id, name in old:
        if not name:
            continue
        try:
            default_storage.delete(name)
        except OSError as exc:
            logger.warning("%s %s: could not delete %s: %s", model._meta.model_name, row_id, name, exc)
    return len(old)


def queue_after_commit(task_name: str, row: FileJob, **kwargs) -> None:
    """Queue the Celery task `task_name` with `kwargs` once the transaction commits. When the broker
    cannot be reached, `row` is finished with that error, so its page says so instead of waiting
    for ever."""

    def enqueue() -> None:
        from celery import current_app
        from kombu.exceptions import OperationalError as BrokerError

        try:
            current_app.tasks[task_name].delay(**kwargs)
        except BrokerError as exc:
            logger.error("could not queue %s for %s %s: %s", task_name, row._meta.model_name, row.pk, exc)
            type(row).objects.filter(pk=row.pk).update(
                finished_at=timezone.now(), error=f"The task queue (broker) is unreachable: {exc}")

    transaction.on_commit(enqueue)
