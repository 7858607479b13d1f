"""Writes started from the back office that are not the engine's: running a manual Notify
(inline or queued as a Celery task) and keeping, for the result page, which orders were skipped.
The sending itself is dunning.services.orders_notify."""

from __future__ import annotations

import datetime
import logging
from functools import partial

from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError

from dunning.models import DunningRun
from dunning.services import SendOutcome, orders_notify

logger = logging.getLogger(__name__)

# How many skipped orders the result page can list by number (the counts are always complete).
MAX_LISTED = 200
QUEUE_FAILED = "queue_failed"


def notify_and_record(
    *, order_ids: list[int], level: int, user, now: datetime.datetime, run: DunningRun | None = None
) -> tuple[DunningRun, SendOutcome]:
    """Send the `level` reminder to `order_ids` (the engine re-checks each order) and keep the
    first MAX_LISTED skipped orders with their reasons in the run's details."""
    queued = bool(run and (run.details or {}).get("queued"))
    run, outcome = orders_notify(order_ids=order_ids, level=level, user=user, now=now, run=run)
    details = dict(run.details or {})
    details["queued"] = queued
    details["selected"] = len(order_ids)
    details["skipped_orders"] = {
        str(order_id): reason for order_id, reason in sorted(outcome.skipped.items())[:MAX_LISTED]
    }
    details["unknown_orders"] = outcome.unknown[:MAX_LISTED]
    DunningRun.objects.filter(pk=run.pk).update(details=details)
    run.details = details
    return run, outcome


def notify_queue(*, order_ids: list[int], level: int, user, now: datetime.datetime) -> DunningRun:
    """Record the run, then (after commit) queue the task that sends. Should the broker be
    unreachable, the run is closed with that error and nothing is sent."""
    with transaction.atomic():
        run = DunningRun.objects.create(
            trigger=DunningRun.Trigger.MANUAL,
            started_at=now,
            started_by=user,
            details={"level": level, "selected": len(order_ids), "queued": True},
        )
        transaction.on_commit(
            partial(_enqueue, run_id=run.pk, order_ids=order_ids, level=level, user_id=user.pk if user else None)
        )
    run.refresh_from_db()
    return run


def _enqueue(*, run_id: int, order_ids: list[int], level: int, user_id: int | None) -> None:
    from .tasks import notify_orders

    try:
        notify_orders.delay(run_id=run_id, order_ids=order_ids, level=level, user_id=user_id)
    except OperationalError as exc:
        logger.error("could not queue Notify run %s: %s", run_id, exc)
        run = DunningRun.objects.get(pk=run_id)
        run.details = {**(run.details or {}), QUEUE_FAILED: True}
        run.error = f"The task queue (broker) is unreachable, nothing was sent: {exc}"[:10000]
        run.finished_at = timezone.now()
        run.save(update_fields=["details", "error", "finished_at"])


def notify_task_run(*, run_id: int, order_ids: list[int], level: int, user_id: int | None) -> None:
    """The body of the Celery task: run the queued Notify once (a redelivered task whose run
    already finished does nothing; the engine never sends a level twice anyway)."""
    from django.contrib.auth import get_user_model

    run = DunningRun.objects.filter(pk=run_id).first()
    if run is None or run.finished_at is not None:
        return
    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    try:
        notify_and_record(order_ids=order_ids, level=level, user=user, now=timezone.now(), run=run)
    except Exception as exc:
        logger.exception("Notify run %s failed", run_id)
        DunningRun.objects.filter(pk=run_id).update(
            error=f"{type(exc).__name__}: {exc}"[:10000], finished_at=timezone.now()
        )
        raise
