"""Celery tasks: thin wrappers that take ids and call a service. Nothing else lives here.

With Redis a task unacknowledged past the visibility timeout is delivered again (acks_late is
on): every task here is safe to run twice, because the tick decides under a database lease and
sending is exactly-once by row locks."""

from celery import shared_task
from django.contrib.auth import get_user_model
from django.utils import timezone

from . import automation, reporting, services
from .models import DunningRun


@shared_task(name="dunning.tasks.automation_tick")
def automation_tick() -> int | None:
    """Sent by beat every DUNNING_TICK_SECONDS: runs the job if the switch says it is due."""
    run = automation.automation_tick(now=timezone.now())
    return run.pk if run else None


def _user(user_id: int | None):
    return get_user_model().objects.filter(pk=user_id).first() if user_id else None


@shared_task(name="dunning.tasks.run_dunning_job")
def run_dunning_job(trigger: str = DunningRun.Trigger.COMMAND, user_id: int | None = None, dry_run: bool = False,
                    sales_account_id: int | None = None) -> int:
    """The job once, now, whatever the switch says (like `manage.py run_dunning`)."""
    if trigger not in DunningRun.Trigger.values:
        raise ValueError(f"unknown trigger {trigger!r}")
    run = services.dunning_run_execute(now=timezone.now(), trigger=trigger, dry_run=dry_run,
                                       sales_account_id=sales_account_id, user=_user(user_id), fan_out=True)
    return run.pk


@shared_task(name=services.CHUNK_TASK, acks_late=True)
def send_chunk(*, chunk_id: int) -> None:
    """One chunk of a run (a level, up to DUNNING_BATCH_SIZE orders): any worker takes it; the last
    chunk to end closes the run."""
    services.dunning_chunk_run(chunk_id)


# The name it had when the back office owned it: messages queued before keep running.
@shared_task(name=services.NOTIFY_TASK, acks_late=True)
def notify_orders(*, run_id: int, order_ids: list[int], level: int, user_id: int | None) -> None:
    """A large manual Notify, run in the worker; its DunningRun was created by `notify_queue`."""
    services.notify_task_run(run_id=run_id, order_ids=order_ids, level=level, user_id=user_id)


@shared_task(name="dunning.tasks.purge_letter_batches")
def purge_letter_batches() -> int:
    """Sent by beat daily: letter batches older than LETTER_BATCHES_KEEP_DAYS deleted with their files."""
    return services.letter_batches_purge(now=timezone.now())


@shared_task(name="dunning.tasks.record_dashboard_snapshot")
def record_dashboard_snapshot() -> int:
    """Sent by beat every DASHBOARD_SNAPSHOT_SECONDS: today's receivables snapshot (backfilling
    missing days of the last 90) and the reminder outcomes. Safe to run twice."""
    now = timezone.now()
    result = reporting.snapshots_record(now=now)
    reporting.reminder_outcomes_rebuild(now=now)
    return result.rows


@shared_task(name=services.LETTERS_TASK, acks_late=True)
def render_letter_batch(*, batch_id: int) -> None:
    """"All letters as one PDF" for a large batch; its LetterBatch was created by `letter_batch_create`."""
    services.letter_batch_render(batch_id=batch_id)
