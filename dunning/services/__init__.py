"""Writes of the dunning domain, by sub-domain:

- `sending`: reminders sent exactly once (the outbox claim, `SendBatch`, `reminders_send`);
- `providers`: the e-mail message, sending with retries, error classes;
- `reminders`: every status transition of a reminder after it was claimed;
- `cancellation`: flagging or cancelling old unpaid prepayment orders, team notices;
- `runs`: the job, staff's Notify (inline or queued), recording runs;
- `letter_batches`: "all letters as one PDF" (inline or in the worker, with progress).

The public names are re-exported here: `from dunning.services import reminders_send`."""

from ..selectors import Skip
from .cancellation import CancellationOutcome, prepayment_orders_handle
from .letter_batches import LETTERS_TASK, letter_batch_create, letter_batch_render, letter_batches_purge
from .providers import AMBIGUOUS, PERMANENT, TRANSIENT, build_message, classify_send_error, error_text
from .reminders import (
    ReminderNotPending,
    ReminderStillInFlight,
    WentOut,
    orders_mark_reminded,
    reminder_mark_failed,
    reminder_mark_sent,
    reminders_mark_failed,
    reminders_mark_sent,
)
from .runs import (
    CHUNK_TASK,
    MAX_LISTED,
    NOTIFY_TASK,
    QUEUE_FAILED,
    chunks_dispatch,
    dunning_chunk_run,
    dunning_run_close,
    dunning_run_execute,
    dunning_run_finish,
    dunning_runs_recover,
    notify_queue,
    notify_task_run,
    orders_notify,
)
from .sending import ProviderUnavailable, SendBatch, SendOutcome, TemplateResolver, reminders_send

__all__ = [
    "AMBIGUOUS", "MAX_LISTED", "NOTIFY_TASK", "PERMANENT", "QUEUE_FAILED", "TRANSIENT", "CancellationOutcome",
    "ProviderUnavailable", "ReminderNotPending", "ReminderStillInFlight", "SendBatch", "SendOutcome", "Skip",
    "TemplateResolver", "WentOut", "build_message", "classify_send_error", "dunning_run_close", "dunning_run_execute",
    "CHUNK_TASK", "chunks_dispatch", "dunning_chunk_run", "dunning_run_finish", "dunning_runs_recover",
    "error_text", "notify_queue", "notify_task_run", "orders_mark_reminded", "orders_notify",
    "prepayment_orders_handle", "reminder_mark_failed", "reminder_mark_sent", "reminders_mark_failed",
    "reminders_mark_sent", "reminders_send",
    "LETTERS_TASK", "letter_batch_create", "letter_batch_render", "letter_batches_purge",
]
