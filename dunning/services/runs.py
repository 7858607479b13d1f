"""Runs: the job (`dunning_run_execute`: the automatic reminders of every active config, then the
prepayment cancellation) and staff's Notify (`orders_notify`, inline or queued to the worker). Each
is recorded as a `DunningRun`; `dunning_run_close` is the one way a run is marked finished, with its
duration and, when it failed as a whole, its error."""

from __future__ import annotations

import contextlib
import datetime
import logging
import time
from array import array
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from functools import partial
from typing import Any

from celery import current_app
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext_noop
from kombu.exceptions import OperationalError as BrokerError

from common.i18n import stored_text
from orders.models import Order
from payments.services import payments_rematch

from .. import selectors
from ..models import DunningRun, Reminder
from .cancellation import prepayment_orders_handle
from .providers import error_text
from .sending import ProviderUnavailable, SendOutcome, reminders_release_orphans, reminders_send

logger = logging.getLogger(__name__)

# How many skipped orders the Notify result page can list by number (the counts are always complete).
MAX_LISTED = 200
QUEUE_FAILED = "queue_failed"
# The Notify task's name: it began in the back office and queued messages carry this name.
NOTIFY_TASK = "backoffice.notify_orders"


def dunning_run_close(run: DunningRun, *, error: str = "", started: float | None = None) -> None:
    """Mark `run` finished now (with its duration when `started`, a time.monotonic(), is given),
    adding `error` to what it recorded. Never raises: the database may be what failed."""
    run.error = "\n".join(filter(None, [run.error, error]))[:10000]
    run.finished_at = timezone.now()
    if started is not None:
        run.duration_ms = int((time.monotonic() - started) * 1000)
    try:
        run.save()
    except Exception:
        logger.exception("could not record the end of dunning run %s", run.pk)


@contextlib.contextmanager
def _finishing(run: DunningRun) -> Iterator[None]:
    """Closes `run` when the body ends, also when it raises (the error is kept)."""
    started = time.monotonic()
    error = ""
    try:
        yield
    except BaseException as exc:
        error = stored_text(gettext_noop("Run aborted: %(error)s"), error=error_text(exc))
        raise
    finally:
        dunning_run_close(run, error=error, started=started)


# --- the job -----------------------------------------------------------------------------------

def _due_ids(qs: QuerySet[Order]) -> array:
    """The ids of the orders due, read in one query (the partial indexes on open orders answer it)
    and kept as 8 bytes each: 100,000 due orders take 0.8 MB. Keyset pages ordered by id looked
    cheaper but walked the primary key through every order, paid ones included, on each page
    (220 ms a page at a million orders). Each claim re-checks its chunk anyway."""
    return array("q", qs.order_by("id").values_list("id", flat=True).iterator(chunk_size=5000))


def dunning_run_execute(*, now: datetime.datetime, trigger: str = DunningRun.Trigger.COMMAND,
                        dry_run: bool = False, sales_account_id: int | None = None, user=None) -> DunningRun:
    """Run the job once: the automatic reminders of every active config, then the prepayment
    cancellation. Records and returns a DunningRun; one failing order never stops the rest, and a
    run that fails as a whole (database gone, ...) is still recorded as finished with its error."""
    run = DunningRun.objects.create(trigger=trigger, dry_run=dry_run, started_at=now, started_by=user)
    with _finishing(run):
        _execute(run, now=now, dry_run=dry_run, sales_account_id=sales_account_id)
    return run


def _execute(run: DunningRun, *, now: datetime.datetime, dry_run: bool, sales_account_id: int | None) -> None:
    # Payments first: an order paid by a transfer still unmatched (its order imported after the
    # statement) must leave its level before anything is sent. Dunning calls payments, never back.
    matched = 0 if dry_run else payments_rematch(now=now)
    configs = selectors.active_configs(sales_account_id=sales_account_id)
    names = {c.sales_account_id: c.sales_account.name for c in configs}
    levels: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    errors: list[str] = []
    # Highest level first: a reminder sent in this run must not make the same order due for the
    # next level in the same run (possible when min_days_between_reminders is 0).
    for level in reversed(selectors.DunningLevel.sendable()):
        level_configs = selectors.automatic_configs(level, configs)
        if not level_configs:
            continue
        due = selectors.orders_due(level, now=now, configs=level_configs, automatic=True)
        if dry_run:
            for account_id, count in Counter(due.values_list("sales_account_id", flat=True)).items():
                levels[names[account_id]][str(level.value)] = {"due": count}
            continue
        outcome = SendOutcome()
        provider_down = False
        # before the due orders are read: what a dead run claimed and never handed over is due again
        reminders_release_orphans(level=level.value, now=now)
        try:
            outcome = reminders_send(order_ids=_due_ids(due), level=level.value,
                                     trigger=Reminder.Trigger.AUTOMATIC, now=now, run=run, configs=level_configs)
        except ProviderUnavailable as exc:
            outcome = exc.outcome
            provider_down = True
            errors.append(stored_text(
                gettext_noop("Level %(level)s: e-mail provider unavailable, run stopped: %(error)s"),
                level=level.value, error=exc))
        account_of = outcome.accounts  # no query over every touched order: memory stays flat
        per_account: dict[int, Counter] = defaultdict(Counter)
        for order_id in outcome.sent:
            per_account[account_of[order_id]]["sent"] += 1
        for order_id in outcome.failed:
            per_account[account_of[order_id]]["failed"] += 1
        for order_id in outcome.unknown:
            per_account[account_of[order_id]]["unknown"] += 1
        for order_id, reason in outcome.skipped.items():
            per_account[account_of[order_id]]["skipped"] += 1
            per_account[account_of[order_id]][f"skipped:{reason}"] += 1
        for account_id, counts in per_account.items():
            levels[names.get(account_id, str(account_id))][str(level.value)] = dict(counts)
        run.sent += len(outcome.sent)
        run.failed += len(outcome.failed)
        run.skipped += len(outcome.skipped)
        if outcome.failed:
            errors += sorted(set(outcome.failed.values()))[:10]
        if provider_down:
            break
    cancellation = prepayment_orders_handle(now=now, configs=configs, dry_run=dry_run)
    run.flagged = sum(len(v) for v in cancellation.flagged.values())
    run.cancelled = sum(len(v) for v in cancellation.cancelled.values())
    errors += cancellation.notice_errors
    run.details = {
        "payments_matched": matched,
        "levels": levels,
        "cancellation": {names.get(a, str(a)): {"flagged": len(cancellation.flagged.get(a, [])),
                                                "cancelled": len(cancellation.cancelled.get(a, []))}
                         for a in set(cancellation.flagged) | set(cancellation.cancelled)},
    }
    run.error = "\n".join(errors)[:10000]


# --- manual Notify -----------------------------------------------------------------------------

def orders_notify(*, order_ids: Iterable[int], level: int, user, now: datetime.datetime,
                  run: DunningRun | None = None) -> tuple[DunningRun, SendOutcome]:
    """Staff's Notify: send the `level` reminder to the given orders that still qualify. The run
    keeps the first MAX_LISTED skipped orders with their reasons for the result page."""
    order_ids = list(order_ids)
    if run is None:
        run = DunningRun.objects.create(trigger=DunningRun.Trigger.MANUAL, started_at=now, started_by=user)
    queued = bool((run.details or {}).get("queued"))
    outcome = SendOutcome()
    with _finishing(run):
        try:
            outcome = reminders_send(order_ids=order_ids, level=level, trigger=Reminder.Trigger.MANUAL, now=now,
                                     user=user, run=run)
        except ProviderUnavailable as exc:
            outcome = exc.outcome
            run.error = stored_text(gettext_noop("E-mail provider unavailable, sending stopped: %(error)s"), error=exc)
        run.sent, run.failed, run.skipped = len(outcome.sent), len(outcome.failed), len(outcome.skipped)
        run.details = {
            **(run.details or {}), "level": level, "skipped": outcome.skip_counts, "unknown": len(outcome.unknown),
            "failed_errors": sorted(set(outcome.failed.values()))[:20], "queued": queued, "selected": len(order_ids),
            "skipped_orders": {str(order_id): reason
                               for order_id, reason in sorted(outcome.skipped.items())[:MAX_LISTED]},
            "unknown_orders": outcome.unknown[:MAX_LISTED],
        }
    return run, outcome


def notify_queue(*, order_ids: list[int], level: int, user, now: datetime.datetime) -> DunningRun:
    """Record the run, then (after commit) queue the task that sends. Should the broker be
    unreachable, the run is closed with that error and nothing is sent."""
    with transaction.atomic():
        run = DunningRun.objects.create(trigger=DunningRun.Trigger.MANUAL, started_at=now, started_by=user,
                                        details={"level": level, "selected": len(order_ids), "queued": True})
        transaction.on_commit(partial(_enqueue, run=run, order_ids=order_ids, level=level,
                                      user_id=user.pk if user else None))
    run.refresh_from_db()
    return run


def _enqueue(*, run: DunningRun, order_ids: list[int], level: int, user_id: int | None) -> None:
    try:
        # by name from the app's registry: dunning.tasks imports this module, not the other way round
        current_app.tasks[NOTIFY_TASK].delay(run_id=run.pk, order_ids=order_ids, level=level, user_id=user_id)
    except BrokerError as exc:
        logger.error("could not queue Notify run %s: %s", run.pk, exc)
        run.details = {**(run.details or {}), QUEUE_FAILED: True}
        dunning_run_close(run, error=stored_text(
            gettext_noop("The task queue (broker) is unreachable, nothing was sent: %(error)s"), error=exc))


def notify_task_run(*, run_id: int, order_ids: list[int], level: int, user_id: int | None) -> None:
    """The body of the Notify task: run the queued Notify once (a redelivered task whose run
    already finished does nothing; the engine never sends a level twice anyway)."""
    run = DunningRun.objects.filter(pk=run_id).first()
    if run is None or run.finished_at is not None:
        return
    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    orders_notify(order_ids=order_ids, level=level, user=user, now=timezone.now(), run=run)
