""""All letters as one PDF" (docs/rules/letters.md): the letters of some reminders in one file, for
postal sending. Up to DUNNING_ASYNC_LETTERS_THRESHOLD letters are rendered in the request; more
are rendered by the worker (`dunning.tasks.render_letter_batch`), which writes its progress to the
batch row after every chunk, and the back office shows a progress page until the file is there.

A redelivered task whose batch is finished does nothing; one whose batch is half done starts it
again (rendering changes nothing but the file).

Batches are kept LETTER_BATCHES_KEEP_DAYS days (`letter_batches_purge`, sent by beat daily): then
the row and its file are deleted. The reminders and their single letters stay; a batch can be made
again from the Notify run's result page."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Sequence

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from common.retention import purge_with_files, queue_after_commit

from ..letters import letters_of, render_letters_pdf
from ..models import LetterBatch
from .providers import error_text

logger = logging.getLogger(__name__)
LETTERS_TASK = "dunning.tasks.render_letter_batch"


def letter_batch_create(*, reminder_ids: Sequence[int], user, now: datetime.datetime) -> LetterBatch:
    """Record a batch of the letters of `reminder_ids` (in that order) and render it: now when it is
    small, else in the worker (queued after commit). Raises ValueError for no reminders."""
    ids = list(dict.fromkeys(int(i) for i in reminder_ids))
    if not ids:
        raise ValueError("no reminders")
    with transaction.atomic():
        batch = LetterBatch.objects.create(reminder_ids=ids, created_by=user, created_at=now, total=len(ids))
        if len(ids) > settings.DUNNING_ASYNC_LETTERS_THRESHOLD:
            queue_after_commit(LETTERS_TASK, batch, batch_id=batch.pk)
            return batch
    letter_batch_render(batch_id=batch.pk)
    batch.refresh_from_db()
    return batch


def letter_batch_render(*, batch_id: int) -> None:
    """Render the batch's letters into its PDF, recording progress; an error is recorded on the batch."""
    batch = LetterBatch.objects.filter(pk=batch_id).first()
    if batch is None or batch.finished_at is not None:
        return
    reminders = letters_of(batch.reminder_ids)

    def progress(done: int) -> None:
        LetterBatch.objects.filter(pk=batch_id).update(done=done)

    try:
        if not reminders:
            raise ValueError("the reminders of this batch no longer exist")
        pdf = render_letters_pdf(reminders, progress=progress)
    except Exception as exc:
        logger.exception("letter batch %s failed", batch_id)
        LetterBatch.objects.filter(pk=batch_id).update(finished_at=timezone.now(), error=error_text(exc))
        return
    batch.pdf.save(f"letters-{batch_id}.pdf", ContentFile(pdf), save=False)
    LetterBatch.objects.filter(pk=batch_id).update(pdf=batch.pdf.name, done=len(reminders), total=len(reminders),
                                                   finished_at=timezone.now())


def letter_batches_purge(*, now: datetime.datetime) -> int:
    """Delete the batches created more than LETTER_BATCHES_KEEP_DAYS days before `now`, with their
    files; returns how many."""
    return purge_with_files(LetterBatch, file_field="pdf", now=now)
