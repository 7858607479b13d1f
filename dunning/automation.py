"""The global switch of the automatic job: the scheduled tick (a service), changing the switch (a
service with its audit row) and its status for the admin page (a selector).

Beat sends `dunning.tasks.automation_tick` every DUNNING_TICK_SECONDS. Each tick reads the switch
from the database, so switching it or changing the interval in the admin takes effect at the next
tick without a restart. Whether a job may start is decided under a row lock on the singleton
(`SELECT ... FOR UPDATE`), and a running job holds a *lease* in that row: overlapping ticks, two
beat processes, a redelivered tick or a run slower than the interval never run two scheduled jobs
at once. A crashed run stops renewing its lease, which expires after DUNNING_LEASE_MINUTES and is
taken over by the next due tick. The database is the lock, not a cache.

`manage.py run_dunning` and the manual Notify do not take the lease: they may run alongside a
scheduled job, which is safe because sending is exactly-once by row locks and a unique constraint
(docs/rules/sending.md)."""

from __future__ import annotations

import datetime
import logging
import threading
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connections, transaction
from django.utils import timezone
from django.utils.translation import gettext_noop

from common.i18n import stored_text

from .models import AutomationChange, DunningAutomation, DunningRun
from .services import dunning_run_close, dunning_run_execute, dunning_runs_recover, error_text

logger = logging.getLogger(__name__)

MIN_INTERVAL_MINUTES = 1
MAX_INTERVAL_MINUTES = 10080  # a week, as the model's validator


def lease_duration() -> datetime.timedelta:
    return datetime.timedelta(minutes=settings.DUNNING_LEASE_MINUTES)


def tick_grace() -> datetime.timedelta:
    """A run counts as due this much before its interval is over. Beat ticks drift by
    milliseconds to seconds (queue latency, a busy worker); without a grace a tick landing just
    before the due time would push the run to the next tick, interval after interval."""
    return datetime.timedelta(seconds=min(settings.DUNNING_TICK_SECONDS / 2, 5))


def _lease_held(automation: DunningAutomation, now: datetime.datetime) -> bool:
    expires = automation.lease_expires_at
    return bool(automation.lease_owner) and expires is not None and now < expires


def _due_at(automation: DunningAutomation) -> datetime.datetime | None:
    """When the next scheduled run is due; None: at the next tick (never ran yet)."""
    if automation.last_scheduled_run_at is None:
        return None
    return automation.last_scheduled_run_at + datetime.timedelta(minutes=automation.interval_minutes)


def _locked_automation() -> DunningAutomation:
    """The singleton, locked for this transaction (created if a database lacks it)."""
    automation = DunningAutomation.objects.select_for_update().filter(pk=1).first()
    if automation is None:
        DunningAutomation.objects.get_or_create(pk=1)
        automation = DunningAutomation.objects.select_for_update().get(pk=1)
    return automation


# --- the tick ------------------------------------------------------------------------------------

def _lease_take(*, now: datetime.datetime) -> str | None:
    """In one short transaction: decide whether a scheduled run is due and, if so, take the lease.
    Returns the lease owner token, or None when nothing is to be done."""
    with transaction.atomic():
        automation = _locked_automation()
        if not automation.enabled:
            return None
        due_at = _due_at(automation)
        if due_at is not None and now < due_at - tick_grace():
            return None
        if _lease_held(automation, now):
            logger.info("automatic dunning due, but a run holds the lease until %s", automation.lease_expires_at)
            return None
        if automation.lease_owner:
            logger.warning("taking over the expired lease of %s (expired %s): did a run crash?",
                           automation.lease_owner, automation.lease_expires_at)
        owner = uuid.uuid4().hex
        automation.lease_owner = owner
        automation.lease_expires_at = now + lease_duration()
        automation.last_scheduled_run_at = now
        automation.save(update_fields=["lease_owner", "lease_expires_at", "last_scheduled_run_at"])
    return owner


def lease_renew(*, owner: str, now: datetime.datetime) -> bool:
    """Extend our lease from `now`; False if it is no longer ours (taken over after expiry)."""
    return bool(DunningAutomation.objects.filter(pk=1, lease_owner=owner).update(
        lease_expires_at=now + lease_duration()))


def lease_release(*, owner: str) -> bool:
    """Give the lease back, only if it is still ours."""
    return bool(DunningAutomation.objects.filter(pk=1, lease_owner=owner).update(
        lease_owner="", lease_expires_at=None))


class _LeaseKeeper:
    """Renews the lease every third of its duration while the run goes on, so a run slower than
    DUNNING_LEASE_MINUTES keeps it; a crashed process stops renewing and the lease expires. The
    thread uses its own database connection and closes it when done."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.every = lease_duration().total_seconds() / 3
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="dunning-lease", daemon=True)

    def __enter__(self) -> _LeaseKeeper:
        if self.every > 0:
            self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        used_db = False
        try:
            while not self._stop.wait(self.every):
                used_db = True
                try:
                    if not lease_renew(owner=self.owner, now=timezone.now()):
                        logger.error("lost the dunning lease %s (expired and taken over)", self.owner)
                        return
                except Exception:
                    logger.exception("renewing the dunning lease failed")
        finally:
            if used_db:
                connections.close_all()


def automation_tick(*, now: datetime.datetime) -> DunningRun | None:
    """One beat tick: run the job if the switch is on, its interval is over and no run holds the
    lease. Returns the run, or None when nothing was due. Every tick first lets the runs whose
    worker died end (`dunning_runs_recover`), whether or not the job is due."""
    try:
        dunning_runs_recover(now=now)
    except Exception:  # the tick itself must go on; the next tick or run tries again
        logger.exception("recovering unfinished dunning runs failed")
    owner = _lease_take(now=now)
    if owner is None:
        return None
    try:
        with _LeaseKeeper(owner):
            return dunning_run_execute(now=now, trigger=DunningRun.Trigger.SCHEDULED, fan_out=True)
    except Exception as exc:
        # dunning_run_execute records its own per-order errors; this is a crash of the run itself
        # (database gone, a bug): close its row so the admin does not show it running forever.
        logger.exception("the scheduled dunning run crashed")
        for run in DunningRun.objects.filter(trigger=DunningRun.Trigger.SCHEDULED, started_at=now,
                                             finished_at__isnull=True):
            dunning_run_close(run, error=stored_text(gettext_noop("The run crashed: %(error)s"), error=error_text(exc)))
        raise
    finally:
        lease_release(owner=owner)


# --- changing the switch -------------------------------------------------------------------------

def _switch_values(automation: DunningAutomation) -> dict:
    return {"enabled": automation.enabled, "interval_minutes": automation.interval_minutes}


def automation_update(*, enabled: bool, interval_minutes: int, user, now: datetime.datetime) -> DunningAutomation:
    """Switch the automatic job on or off and set its interval. Every change is recorded in
    AutomationChange (who, when, old and new values) in the same transaction; saving unchanged
    values records nothing. Takes effect at the next tick."""
    if not MIN_INTERVAL_MINUTES <= interval_minutes <= MAX_INTERVAL_MINUTES:
        raise ValidationError({"interval_minutes": f"between {MIN_INTERVAL_MINUTES} and {MAX_INTERVAL_MINUTES}"})
    with transaction.atomic():
        automation = _locked_automation()
        old = _switch_values(automation)
        new = {"enabled": bool(enabled), "interval_minutes": int(interval_minutes)}
        if old == new:
            return automation
        automation.enabled, automation.interval_minutes = new["enabled"], new["interval_minutes"]
        automation.changed_by = user
        automation.changed_at = now
        automation.save(update_fields=["enabled", "interval_minutes", "changed_by", "changed_at"])
        AutomationChange.objects.create(automation=automation, changed_by=user, changed_at=now, old=old, new=new)
    logger.info("automatic dunning changed by %s: %s -> %s", user, old, new)
    return automation


# --- status for the admin ------------------------------------------------------------------------

@dataclass(frozen=True)
class AutomationStatus:
    enabled: bool
    interval_minutes: int
    last_scheduled_run_at: datetime.datetime | None
    next_run_at: datetime.datetime | None  # None: off, or due at the next tick
    due_now: bool  # on, and the next tick starts a run (unless a lease is held)
    lease_held: bool  # a scheduled run is in progress
    lease_since: datetime.datetime | None
    lease_expires_at: datetime.datetime | None
    lease_stale: bool  # a lease is recorded but expired: its run crashed, the next tick takes over
    tick_seconds: int


def automation_status(*, now: datetime.datetime, automation: DunningAutomation | None = None) -> AutomationStatus:
    automation = automation or DunningAutomation.load()
    due_at = _due_at(automation)
    held = _lease_held(automation, now)
    return AutomationStatus(
        enabled=automation.enabled,
        interval_minutes=automation.interval_minutes,
        last_scheduled_run_at=automation.last_scheduled_run_at,
        next_run_at=due_at if automation.enabled and due_at is not None and due_at > now else None,
        due_now=automation.enabled and (due_at is None or due_at <= now),
        lease_held=held,
        lease_since=automation.last_scheduled_run_at if held else None,
        lease_expires_at=automation.lease_expires_at if automation.lease_owner else None,
        lease_stale=bool(automation.lease_owner) and not held,
        tick_seconds=settings.DUNNING_TICK_SECONDS,
    )
