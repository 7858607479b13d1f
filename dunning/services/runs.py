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
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_noop
from kombu.exceptions import OperationalError as BrokerError

from common.i18n import stored_text
from common.iterables import chunked
from orders.models import Order
from payments.services import payments_rematch

from .. import selectors
from ..models import DunningRun, DunningRunChunk, Reminder
from ..selectors import Skip
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
                        dry_run: bool = False, sales_account_id: int | None = None, user=None,
                        fan_out: bool = False) -> DunningRun:
    """Run the job once: the automatic reminders of every active config, then the prepayment
    cancellation. Records and returns a DunningRun; one failing order never stops the rest, and a
    run that fails as a whole (database gone, ...) is still recorded as finished with its error.

    The due orders are split into chunks (`DunningRunChunk`, one level and DUNNING_BATCH_SIZE
    orders each). With `fan_out` each chunk is a task any worker takes and this returns once they
    are queued (the run ends with its last chunk); without, this process works them one after the
    other and returns the finished run."""
    dunning_runs_recover(now=now)
    run = DunningRun.objects.create(trigger=trigger, dry_run=dry_run, started_at=now, started_by=user,
                                    details={"sales_account_id": sales_account_id} if sales_account_id else {})
    if dry_run:
        with _finishing(run):
            _dry_run(run, now=now, sales_account_id=sales_account_id)
        return run
    try:
        # Payments first: an order paid by a transfer still unmatched (its order imported after the
        # statement) must leave its level before anything is sent. Dunning calls payments, never back.
        matched = payments_rematch(now=now)
        run.details = {**run.details, "payments_matched": matched}
        configs = selectors.active_configs(sales_account_id=sales_account_id)
        work = []
        # Every level's due orders are read before anything is sent: a reminder sent in this run
        # cannot make the same order due for the next level in the same run (possible when
        # min_days_between_reminders is 0).
        for level in reversed(selectors.DunningLevel.sendable()):
            level_configs = selectors.automatic_configs(level, configs)
            if level_configs:
                # before the due orders are read: what a dead run claimed and never handed over is due again
                reminders_release_orphans(level=level.value, now=now)
                due = selectors.orders_due(level, now=now, configs=level_configs, automatic=True)
                work.append((level.value, _due_ids(due)))
        chunks_dispatch(run, work, now=now, fan_out=fan_out)
    except BaseException as exc:
        dunning_run_close(run, error=stored_text(gettext_noop("Run aborted: %(error)s"), error=error_text(exc)))
        raise
    run.refresh_from_db()
    return run


def _dry_run(run: DunningRun, *, now: datetime.datetime, sales_account_id: int | None) -> None:
    configs = selectors.active_configs(sales_account_id=sales_account_id)
    names = {c.sales_account_id: c.sales_account.name for c in configs}
    levels: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for level in reversed(selectors.DunningLevel.sendable()):
        level_configs = selectors.automatic_configs(level, configs)
        if not level_configs:
            continue
        due = selectors.orders_due(level, now=now, configs=level_configs, automatic=True)
        for account_id, count in Counter(due.values_list("sales_account_id", flat=True)).items():
            levels[names[account_id]][str(level.value)] = {"due": count}
    cancellation = prepayment_orders_handle(now=now, configs=configs, dry_run=True)
    run.flagged = sum(len(v) for v in cancellation.flagged.values())
    run.cancelled = sum(len(v) for v in cancellation.cancelled.values())
    run.details = {"payments_matched": 0, "levels": levels, "cancellation": _cancellation_details(cancellation, names)}


def _cancellation_details(cancellation, names: dict[int, str]) -> dict:
    return {names.get(a, str(a)): {"flagged": len(cancellation.flagged.get(a, [])),
                                   "cancelled": len(cancellation.cancelled.get(a, []))}
            for a in set(cancellation.flagged) | set(cancellation.cancelled)}


# --- chunks: the run's work as tasks that any worker takes ---------------------------------------

CHUNK_TASK = "dunning.tasks.send_chunk"
_CHUNK_LOCK_CLASS = 0x44554E  # the first key of a chunk's advisory lock (the second is its id)


def chunks_dispatch(run: DunningRun, work: list[tuple[int, Iterable[int]]], *, now: datetime.datetime,
                    fan_out: bool) -> list[int]:
    """Write the chunks of `run` (per level, DUNNING_BATCH_SIZE orders each) in one transaction,
    then queue one task per chunk (`fan_out`) or work them here. A chunk that cannot be queued
    (broker down) is worked here: nothing is lost and nothing waits for a queue that is not there.
    Returns the chunk ids."""
    with transaction.atomic():
        ids = _chunks_write(run, work, now=now)
    here = ids
    if fan_out:
        here = []
        for chunk_id in ids:
            if here or not _queue_chunk(chunk_id):
                here.append(chunk_id)  # the broker is down: this and the rest are worked here
    for chunk_id in here:
        dunning_chunk_run(chunk_id)
    if not ids:
        dunning_run_finish(run.pk)
    return ids


def _chunks_write(run: DunningRun, work: list[tuple[int, Iterable[int]]], *, now: datetime.datetime) -> list[int]:
    """The chunks of `run`: per level of `work`, DUNNING_BATCH_SIZE orders each; their count goes
    into the run's details. Returns their ids (call inside the caller's transaction)."""
    size = max(1, settings.DUNNING_BATCH_SIZE)
    chunks = DunningRunChunk.objects.bulk_create([
        DunningRunChunk(run=run, level=level, order_ids=list(ids), queued_at=now)
        for level, order_ids in work for ids in chunked(order_ids, size)])
    run.details = {**(run.details or {}), "chunks": len(chunks)}
    run.save(update_fields=["details"])
    return [c.pk for c in chunks]


def _queue_chunk(chunk_id: int) -> bool:
    try:
        # by name from the app's registry: dunning.tasks imports this module, not the other way round
        current_app.tasks[CHUNK_TASK].delay(chunk_id=chunk_id)
    except BrokerError as exc:
        logger.error("could not queue chunk %s, working it here: %s", chunk_id, exc)
        return False
    return True


@contextlib.contextmanager
def _chunk_lock(chunk_id: int) -> Iterator[bool]:
    """On PostgreSQL a session advisory lock while the chunk is worked: a second delivery of its
    task leaves it alone, and `dunning_runs_recover` knows a chunk whose lock is free was left by
    a worker that died. Elsewhere always True."""
    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [_CHUNK_LOCK_CLASS, chunk_id])
        mine = bool(cursor.fetchone()[0])
    try:
        yield mine
    finally:
        if mine:
            with contextlib.suppress(Exception), connection.cursor() as cursor:  # a lost session dropped it
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_CHUNK_LOCK_CLASS, chunk_id])


def dunning_chunk_run(chunk_id: int) -> None:
    """The body of a chunk task: send its reminders (exactly once, whoever else works the same
    orders), record its outcome, and close the run when it was the last. Safe to run twice."""
    chunk = DunningRunChunk.objects.select_related("run", "run__started_by").filter(pk=chunk_id).first()
    if chunk is None:
        return
    if chunk.finished_at is None:
        with _chunk_lock(chunk_id) as mine:
            if not mine:
                return  # another worker works it right now
            if DunningRunChunk.objects.filter(pk=chunk_id, finished_at=None).update(started_at=timezone.now()):
                _chunk_work(chunk)
    dunning_run_finish(chunk.run_id)


def _chunk_work(chunk: DunningRunChunk) -> None:
    run = chunk.run
    manual = run.trigger == DunningRun.Trigger.MANUAL
    outcome = SendOutcome()
    error = ""
    try:
        if DunningRunChunk.objects.filter(run=run, error__startswith=PROVIDER_DOWN).exists():
            # another chunk of this run found the provider down: the orders stay due for the next run
            outcome.skipped = dict.fromkeys(chunk.order_ids, Skip.PROVIDER_DOWN.value)
            error = PROVIDER_DOWN
        else:
            configs = None
            if not manual:
                configs = selectors.automatic_configs(
                    selectors.DunningLevel(chunk.level),
                    selectors.active_configs(sales_account_id=(run.details or {}).get("sales_account_id")))
            outcome = reminders_send(order_ids=chunk.order_ids, level=chunk.level, run=run, now=run.started_at,
                                     trigger=Reminder.Trigger.MANUAL if manual else Reminder.Trigger.AUTOMATIC,
                                     user=run.started_by if manual else None, configs=configs)
    except ProviderUnavailable as exc:
        outcome = exc.outcome
        error = f"{PROVIDER_DOWN}: {exc}"
    except Exception as exc:  # recorded on the chunk (and so the run); the next run sends what is still due
        logger.exception("chunk %s of dunning run %s failed", chunk.pk, run.pk)
        error = f"{CHUNK_ABORTED}{error_text(exc)}"
    DunningRunChunk.objects.filter(pk=chunk.pk, finished_at=None).update(
        finished_at=timezone.now(), sent=len(outcome.sent), failed=len(outcome.failed),
        skipped=len(outcome.skipped), outcome=_outcome_summary(outcome), error=error[:10000])


PROVIDER_DOWN = "E-mail provider unavailable, sending stopped"
CHUNK_ABORTED = "Chunk aborted: "


def _chunk_error_stored(error: str) -> str:
    """A chunk's error (English: its prefixes are markers the code reads) as the run stores it for
    people, in the installation's language."""
    if error.startswith(PROVIDER_DOWN):
        return stored_text(gettext_noop("E-mail provider unavailable, sending stopped"))
    if error == QUEUE_ERROR:
        return stored_text(gettext_noop("The task queue (broker) is unreachable, nothing was sent"))
    if error.startswith(CHUNK_ABORTED):
        return stored_text(gettext_noop("Chunk aborted: %(error)s"), error=error.removeprefix(CHUNK_ABORTED))
    return error


def _outcome_summary(outcome: SendOutcome) -> dict:
    per_account: dict[int, Counter] = defaultdict(Counter)
    account_of = outcome.accounts
    for order_id in outcome.sent:
        per_account[account_of.get(order_id, 0)]["sent"] += 1
    for order_id in outcome.failed:
        per_account[account_of.get(order_id, 0)]["failed"] += 1
    for order_id in outcome.unknown:
        per_account[account_of.get(order_id, 0)]["unknown"] += 1
    for order_id, reason in outcome.skipped.items():
        per_account[account_of.get(order_id, 0)]["skipped"] += 1
        per_account[account_of.get(order_id, 0)][f"skipped:{reason}"] += 1
    return {
        "accounts": {str(a): dict(c) for a, c in per_account.items()},
        "skipped": outcome.skip_counts,
        "skipped_orders": {str(i): r for i, r in sorted(outcome.skipped.items())[:MAX_LISTED]},
        "unknown_orders": outcome.unknown[:MAX_LISTED],
        "failed_errors": sorted(set(outcome.failed.values()))[:20],
    }


def dunning_run_finish(run_id: int) -> bool:
    """Close the run once none of its chunks is open: its counts are the sums of its chunks'; the
    job then handles the prepayment cancellation. Under the run's row lock, so of two last chunks
    ending together one closes it. Returns whether this call closed it."""
    if DunningRunChunk.objects.filter(run_id=run_id, finished_at=None).exists():
        return False
    with transaction.atomic():
        run = DunningRun.objects.select_for_update().filter(pk=run_id, finished_at=None).first()
        if run is None:
            return False
        chunks = list(DunningRunChunk.objects.filter(run=run).defer("order_ids").order_by("id"))
        # Sent and failed from the reminders themselves: a chunk whose worker died and that ran again
        # does not know what its first worker wrote back. Skipped orders have no row: from the chunks.
        counts = Reminder.objects.filter(run=run).aggregate(
            sent=Count("pk", filter=Q(sent_at__isnull=False)),
            failed=Count("pk", filter=Q(status=Reminder.Status.FAILED)))
        run.sent, run.failed = counts["sent"], counts["failed"]
        run.skipped = sum(c.skipped for c in chunks)
        errors = list(dict.fromkeys(_chunk_error_stored(c.error) for c in chunks if c.error))
        failed_errors = sorted({e for c in chunks for e in c.outcome.get("failed_errors", [])})
        if run.trigger == DunningRun.Trigger.MANUAL:
            _finish_notify(run, chunks, failed_errors)
            error = "\n".join(errors)
        else:
            error = "\n".join(errors + failed_errors[:10] + _finish_job(run, chunks))
        run.error = "\n".join(filter(None, [run.error, error]))[:10000]
        run.finished_at = timezone.now()
        run.duration_ms = max(0, int((run.finished_at - run.started_at).total_seconds() * 1000))
        run.save()
    return True


def _finish_job(run: DunningRun, chunks: list[DunningRunChunk]) -> list[str]:
    configs = selectors.active_configs(sales_account_id=(run.details or {}).get("sales_account_id"))
    names = {c.sales_account_id: c.sales_account.name for c in configs}
    levels: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    for chunk in chunks:
        for account_id, counts in chunk.outcome.get("accounts", {}).items():
            levels[names.get(int(account_id), account_id)][str(chunk.level)].update(counts)
    cancellation = prepayment_orders_handle(now=run.started_at, configs=configs)
    run.flagged = sum(len(v) for v in cancellation.flagged.values())
    run.cancelled = sum(len(v) for v in cancellation.cancelled.values())
    run.details = {**(run.details or {}), "cancellation": _cancellation_details(cancellation, names),
                   "levels": {name: {level: dict(counts) for level, counts in by_level.items()}
                              for name, by_level in levels.items()}}
    return list(cancellation.notice_errors)


def _finish_notify(run: DunningRun, chunks: list[DunningRunChunk], failed_errors: list[str]) -> None:
    skipped: Counter = Counter()
    skipped_orders: dict[str, str] = {}
    unknown: list[int] = []
    for chunk in chunks:
        skipped.update(chunk.outcome.get("skipped", {}))
        skipped_orders.update(chunk.outcome.get("skipped_orders", {}))
        unknown += chunk.outcome.get("unknown_orders", [])
    run.details = {**(run.details or {}), "skipped": dict(skipped), "unknown": len(unknown),
                   "failed_errors": failed_errors[:20],
                   "skipped_orders": dict(sorted(skipped_orders.items(), key=lambda kv: int(kv[0]))[:MAX_LISTED]),
                   "unknown_orders": unknown[:MAX_LISTED]}


def dunning_runs_recover(*, now: datetime.datetime) -> int:
    """Runs that cannot end by themselves are made to: a chunk started by a worker that died (on
    PostgreSQL its advisory lock is free, elsewhere it started more than DUNNING_STALE_PENDING_MINUTES
    ago) or queued that long ago and never started (the broker lost it) is queued again (worked here
    when the broker is down); a run none of whose chunks is open is closed. Called before each run
    and by every beat tick. Returns how many chunks were queued again."""
    stale = now - selectors.stale_after()
    requeued = 0
    for chunk in (DunningRunChunk.objects.filter(finished_at=None, run__finished_at=None)
                  .only("id", "queued_at", "started_at").order_by("id")):
        if chunk.started_at is None:
            dead = chunk.queued_at < stale
        elif connection.vendor == "postgresql":
            with _chunk_lock(chunk.pk) as free:
                dead = free
        else:
            dead = chunk.started_at < stale
        if not dead:
            continue
        if not DunningRunChunk.objects.filter(pk=chunk.pk, finished_at=None).update(started_at=None, queued_at=now):
            continue
        logger.warning("dunning chunk %s was left by a worker that is gone; queued again", chunk.pk)
        requeued += 1
        if not _queue_chunk(chunk.pk):
            dunning_chunk_run(chunk.pk)
    for run_id in (DunningRun.objects.filter(finished_at=None, chunks__isnull=False)
                   .exclude(chunks__finished_at=None).values_list("pk", flat=True).distinct()):
        dunning_run_finish(run_id)
    return requeued


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
    """Record the run and its chunks, then (after commit) queue one task per chunk: any worker
    takes them, as for the job's chunks, and the last one closes the run. Should the broker be
    unreachable when the first chunk is queued, the run is closed with that error and nothing is
    sent; should it fail later, the chunks not queued are closed as not sent (the staff see how
    many on the result page)."""
    with transaction.atomic():
        run = DunningRun.objects.create(trigger=DunningRun.Trigger.MANUAL, started_at=now, started_by=user,
                                        details={"level": level, "selected": len(order_ids), "queued": True})
        chunk_ids = _chunks_write(run, [(level, order_ids)], now=now)
        transaction.on_commit(partial(_enqueue, run=run, chunk_ids=chunk_ids))
    run.refresh_from_db()
    return run


def _enqueue(*, run: DunningRun, chunk_ids: list[int]) -> None:
    for index, chunk_id in enumerate(chunk_ids):
        if _queue_chunk(chunk_id):
            continue
        not_queued = DunningRunChunk.objects.filter(pk__in=chunk_ids[index:], started_at=None, finished_at=None)
        for chunk in not_queued:
            DunningRunChunk.objects.filter(pk=chunk.pk, finished_at=None).update(
                finished_at=timezone.now(), skipped=len(chunk.order_ids), error=QUEUE_ERROR,
                outcome={"skipped": {Skip.QUEUE_DOWN.value: len(chunk.order_ids)}})
        if index == 0:
            run.details = {**(run.details or {}), QUEUE_FAILED: True}
            run.save(update_fields=["details"])
        dunning_run_finish(run.pk)
        return


QUEUE_ERROR = "The task queue (broker) is unreachable, nothing was sent"


def notify_task_run(*, run_id: int, order_ids: list[int], level: int, user_id: int | None) -> None:
    """The body of the Notify task: run the queued Notify once (a redelivered task whose run
    already finished does nothing; the engine never sends a level twice anyway)."""
    run = DunningRun.objects.filter(pk=run_id).first()
    if run is None or run.finished_at is not None:
        return
    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    orders_notify(order_ids=order_ids, level=level, user=user, now=timezone.now(), run=run)
