"""The Celery app. Beat sends `dunning.tasks.automation_tick` every DUNNING_TICK_SECONDS; the tick
itself decides from the database whether the automatic job is due, so switching the automation
or changing its interval needs no restart."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("mahnwesen")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_finalize.connect
def _schedule_tick(sender: Celery, **kwargs) -> None:
    from django.conf import settings

    sender.add_periodic_task(
        float(settings.DUNNING_TICK_SECONDS), sender.signature("dunning.tasks.automation_tick"),
        name="dunning automation tick",
        expires=float(settings.DUNNING_TICK_SECONDS),  # ticks queued while no worker ran are dropped, not piled up
    )
    # Webhook retries are due rows in the database, swept here; never ETA tasks hours ahead.
    sender.add_periodic_task(
        float(settings.WEBHOOK_SWEEP_SECONDS), sender.signature("webhooks.tasks.deliver_due"),
        name="webhook delivery sweep", expires=float(settings.WEBHOOK_SWEEP_SECONDS),
    )
    # The dashboard's daily snapshot: today's row is rewritten at each run, missing days backfilled.
    sender.add_periodic_task(
        float(settings.DASHBOARD_SNAPSHOT_SECONDS), sender.signature("dunning.tasks.record_dashboard_snapshot"),
        name="dashboard snapshot", expires=float(settings.DASHBOARD_SNAPSHOT_SECONDS),
    )
    # The open orders' totals (orders.open_totals): the triggers' deltas folded into the buckets.
    sender.add_periodic_task(
        float(settings.OPEN_TOTALS_FOLD_SECONDS), sender.signature("orders.tasks.fold_open_totals"),
        name="open totals fold", expires=float(settings.OPEN_TOTALS_FOLD_SECONDS),
    )
    # "All letters as one PDF": batches older than LETTER_BATCHES_KEEP_DAYS deleted with their files.
    sender.add_periodic_task(
        86400.0, sender.signature("dunning.tasks.purge_letter_batches"),
        name="letter batch purge", expires=86400.0,
    )
    # Large Excel exports: older than EXPORT_JOBS_KEEP_DAYS deleted with their files.
    sender.add_periodic_task(
        86400.0, sender.signature("backoffice.tasks.purge_export_jobs"),
        name="export purge", expires=86400.0,
    )
