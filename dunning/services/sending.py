"""Sending reminders exactly once (docs/rules/sending.md).

Sending follows the outbox pattern: a chunk of due orders is locked with `SELECT ... FOR UPDATE
SKIP LOCKED`, re-checked against the level rule, and their reminders are inserted as *pending* (in
flight) and committed **before** the e-mail backend is called. Only then are the e-mails sent, and
their outcome written back with set-based UPDATEs (dunning.services.reminders). A partial unique
constraint (one non-failed reminder per order and level) is the last line of defence: a second run,
a retried task or a crashed one can never send the same level twice.

`SendBatch` holds one call's state (level, trigger, time, user, run, configs, templates, the mail
connection and the outcome so far) so the steps need not pass it around."""

from __future__ import annotations

import contextlib
import datetime
import itertools
import logging
import threading
import time
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TypeVar

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from django.db import connection as db_connection
from django.utils.translation import gettext_noop

from common.bulk import insert_rows, pipelined
from common.dates import local_today
from common.i18n import stored_text
from orders.audit import order_events_log
from orders.models import Order, OrderEvent
from webhooks.models import EventType
from webhooks.services import endpoints_wanting, events_emit

from .. import letters, selectors
from ..models import DunningConfig, DunningLevel, DunningRun, EmailTemplate, Reminder, ReminderAssignment
from ..selectors import Skip
from ..templating import CompiledTemplate, RenderedEmail, render_reminder
from .providers import (
    AMBIGUOUS,
    PERMANENT,
    SENT,
    THROTTLED,
    TRANSIENT,
    build_message,
    error_text,
    provider_connection,
    send_message,
)
from .ratelimit import LocalLimiter, rate_limiter
from .reminders import (
    WentOut,
    reminders_mark_failed,
    reminders_mark_outcome_unknown,
    reminders_mark_sent,
    reminders_withdraw,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")

GIVE_UP_AFTER = 5  # transient failures in a row before a run stops
PROBE_CALLS = 4  # calls sent in the run's own thread to learn whether the provider makes them wait
CPU_BOUND_SHARE = 0.5  # calls computing at least this share of their time stay in the run's own thread
LEARNT_FOR = 300.0  # seconds a process reuses what it measured of a backend for the next calls (chunks)
_LEARNT: dict[str, tuple[float, float]] = {}  # EMAIL_BACKEND -> (CPU share of its calls, when measured)
MAX_THROTTLED = 20  # 429s with Retry-After for one message before it counts as a transient failure


@dataclass
class SendOutcome:
    sent: list[int] = field(default_factory=list)  # order ids
    failed: dict[int, str] = field(default_factory=dict)  # order id -> error
    skipped: dict[int, str] = field(default_factory=dict)  # order id -> Skip value
    unknown: list[int] = field(default_factory=list)  # order ids whose outcome the provider left unclear
    accounts: dict[int, int] = field(default_factory=dict)  # order id -> sales account id, for summaries

    @property
    def skip_counts(self) -> dict[str, int]:
        return dict(Counter(self.skipped.values()))


class ProviderUnavailable(Exception):
    """Several sends in a row failed transiently: stop this run instead of hammering the provider.
    `outcome` holds what was recorded up to then."""

    def __init__(self, message: str, outcome: SendOutcome) -> None:
        super().__init__(message)
        self.outcome = outcome


class TemplateResolver:
    """Resolves and compiles the template of (account, level, language) once per call."""

    def __init__(self, level: int) -> None:
        self.level = level
        assignments = list(ReminderAssignment.objects.filter(level=level).select_related("template"))
        self._assignments = {a.sales_account_id: a.template for a in assignments}
        # the accounts whose reminder e-mail carries its letter as a PDF (docs/rules/letters.md)
        self.attach_pdf = {a.sales_account_id for a in assignments if a.attach_pdf}
        names = {t.name for t in self._assignments.values()}
        self._by_name_language = {(t.name, t.language): t for t in EmailTemplate.objects.filter(name__in=names)}
        self._compiled: dict[int, CompiledTemplate | Exception] = {}

    @property
    def accounts(self) -> set[int]:
        """The sales accounts with a template for this level."""
        return set(self._assignments)

    def template_for(self, sales_account_id: int, language: str) -> EmailTemplate | None:
        assigned = self._assignments.get(sales_account_id)
        if assigned is None:
            return None
        return self._by_name_language.get((assigned.name, language), assigned)

    def compiled(self, template: EmailTemplate) -> CompiledTemplate:
        if template.pk not in self._compiled:
            try:
                self._compiled[template.pk] = CompiledTemplate(template)
            except Exception as exc:  # a template broken in the database must not stop the run
                self._compiled[template.pk] = exc
        result = self._compiled[template.pk]
        if isinstance(result, Exception):
            raise result
        return result


def retrying(step: Callable[[], T], attempts: int = 4) -> T:
    """Run a transaction again when it was rolled back whole through no fault of its own: chosen as
    a deadlock or serialization victim, or the database connection dropped (it reconnects). Each step
    here is safe to repeat, and writing back the outcome of e-mails already sent must not be lost to
    such a hiccup."""
    for attempt in range(1, attempts + 1):
        try:
            return step()
        except (OperationalError, InterfaceError) as exc:
            sqlstate = getattr(exc.__cause__, "sqlstate", None)
            victim = sqlstate in ("40P01", "40001")
            # 08xxx: connection exception; 57P0x: the server shut the connection; none: lost client-side
            lost = sqlstate is None or sqlstate.startswith(("08", "57P")) or not _connection_usable()
            dropped = lost and not db_connection.in_atomic_block
            if not (victim or dropped) or attempt == attempts:
                raise
            logger.warning("retrying after %s (attempt %s)", "deadlock" if victim else "lost connection", attempt)
            if dropped:
                db_connection.close()  # the next query opens a new connection
            time.sleep(0.2 * attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def _connection_usable() -> bool:
    try:
        return db_connection.connection is not None and db_connection.is_usable()
    except Exception:
        return False


@dataclass
class _Claimed:
    reminder_id: int
    order_id: int
    message: EmailMultiAlternatives
    handed: bool = False
    throttled: int = 0
    order_number: str = ""
    sales_account_id: int = 0
    claim_key: int | None = None  # the advisory lock of its claim (PostgreSQL)


def claim_lock_key(claim: uuid.UUID) -> int:
    """The PostgreSQL advisory lock (session level) a run holds on each claim while it works it:
    a claim whose lock can be taken belongs to a run that is gone."""
    return int.from_bytes(claim.bytes[:8], "big", signed=True)


def _advisory(function: str, key: int) -> bool:
    with db_connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(%s)", [key])
        return bool(cursor.fetchone()[0])


def reminders_release_orphans(*, level: int, now: datetime.datetime) -> int:
    """Withdraw pending reminders of `level` that a run claimed but never handed to the provider,
    when that run is gone: on PostgreSQL its claim's advisory lock is free (the session died with
    the process, so this is known at once); elsewhere when the claim is older than `stale_after`.
    Their orders are due again and the calling run sends them. Reminders handed over stay pending
    (outcome unknown) for staff. Returns how many were withdrawn."""
    orphans = Reminder.objects.filter(level=level, status=Reminder.Status.PENDING, handed_at__isnull=True)
    if db_connection.vendor != "postgresql":
        deleted, _ = orphans.filter(created_at__lt=now - selectors.stale_after()).delete()
        return deleted
    released = 0
    for claim in set(orphans.exclude(claim=None).values_list("claim", flat=True).distinct()):
        key = claim_lock_key(claim)
        if not _advisory("pg_try_advisory_lock", key):
            continue  # its run is alive and working it
        try:
            deleted, _ = orphans.filter(claim=claim).delete()
            released += deleted
        finally:
            _advisory("pg_advisory_unlock", key)
    if released:
        logger.warning("withdrew %s level-%s reminders a stopped run had claimed but never sent", released, level)
    return released


class SendBatch:
    """One call of `reminders_send`: claims chunks, sends, records."""

    def __init__(self, *, level: int, trigger: str, now: datetime.datetime, user, run: DunningRun | None,
                 configs: list[DunningConfig]) -> None:
        self.level = level
        self.trigger = trigger
        self.automatic = trigger == Reminder.Trigger.AUTOMATIC
        self.now = now
        self.user = user
        self.run = run
        self.configs = configs
        self.resolver = TemplateResolver(level)
        # The claim's inputs: the configs' fees and deadlines, and the base rates, once per batch.
        self.config_by_key = {(c.sales_account_id, c.payment_method_id): c for c in configs}
        self.rates = selectors.base_rates()
        self.today = local_today(now)
        self.outcome = SendOutcome()
        self.concurrency = max(1, int(getattr(settings, "DUNNING_SEND_CONCURRENCY", 32)))
        self.limiter = rate_limiter()
        self.connection = None  # the main thread's: opened for a chunk sent without threads
        self._transient_in_a_row = 0
        self._claim_locks: dict[int, int] = {}  # advisory lock of a claim -> its reminders not yet handed over
        self._pool: ThreadPoolExecutor | None = None  # started once calls are seen to wait (_threads_pay)
        self._probed = 0  # calls sent in this thread, measured
        self._cpu_share = 1.0  # of those calls' time, the share spent computing (moving average)
        learnt = _LEARNT.get(settings.EMAIL_BACKEND)
        if learnt is not None and time.monotonic() - learnt[1] < LEARNT_FOR:
            # this process measured the same backend a moment ago (the chunk before): no probing again
            self._probed, self._cpu_share = PROBE_CALLS, learnt[0]
        self._local = threading.local()  # each sending thread's own provider connection
        self._connections: list = []
        self._connections_lock = threading.Lock()
        self._letter_assets: letters.LetterAssets | None = None
        # The webhook endpoints that want "reminder sent", read once per batch (a chunk of at most
        # DUNNING_BATCH_SIZE orders) instead of once per write-back: an endpoint added or switched
        # off while a chunk is sent applies from the next chunk (docs/rules/api-and-webhooks.md).
        self._endpoint_accounts = {c.sales_account_id for c in configs}
        self.endpoints = None  # read at the first write-back of a sent reminder

    # --- claiming ---

    def claim(self, chunk: list[int]) -> list[_Claimed]:
        """Lock, re-check and write the pending reminders of one chunk; commits before returning."""
        claim = uuid.uuid4()
        outcome = self.outcome
        checks = selectors.delivery_checks(accounts_with_template=self.resolver.accounts)
        with transaction.atomic():
            if db_connection.vendor == "postgresql":
                # held (session level) until the chunk is worked: while held, nobody withdraws it
                key = claim_lock_key(claim)
                _advisory("pg_advisory_lock", key)
                self._claim_locks[key] = 0
            due = list(selectors.orders_due(self.level, now=self.now, configs=self.configs, automatic=self.automatic,
                                            queryset=Order.objects.filter(id__in=chunk))
                       .annotate(skip_reason=selectors.skip_reason(checks))
                       .select_for_update(skip_locked=True, of=("self",))
                       .order_by("id"))
            for order in due:  # the configs' account and method instead of two more instances per order
                config = self.config_by_key.get((order.sales_account_id, order.payment_method_id))
                if config is not None:  # (always: an order is due under its config; else read when used)
                    order.sales_account, order.payment_method = config.sales_account, config.payment_method
            # Race: a concurrent run may have claimed one of these rows between this statement's snapshot
            # and our lock. This query has a fresh snapshot (READ COMMITTED) and sees its committed claim.
            due_ids = [o.id for o in due]
            live = set(Reminder.objects.filter(order_id__in=due_ids, level=self.level)
                       .exclude(status=Reminder.Status.FAILED).values_list("order_id", flat=True))
            # The claim's per-order inputs, one query each per chunk (none at level 1, none for payments yet).
            firsts = selectors.first_deadlines(due_ids) if self.level > DunningLevel.FIRST else {}
            payments = selectors.claim_payments_by_order(due_ids)
            rows: list[Reminder] = []
            rows_by_order: dict[int, Reminder] = {}
            rendered_by_order: dict[int, RenderedEmail] = {}
            orders: dict[int, Order] = {}
            for order in due:
                orders[order.id] = order
                outcome.accounts[order.id] = order.sales_account_id
                if order.id in live:
                    outcome.skipped[order.id] = Skip.IN_FLIGHT
                    continue
                if order.skip_reason:
                    outcome.skipped[order.id] = order.skip_reason
                    continue
                template = self.resolver.template_for(order.sales_account_id, order.effective_language)
                config = self.config_by_key.get((order.sales_account_id, order.payment_method_id))
                deadline = selectors.reminder_deadline(config, on=self.today)
                owed = selectors.order_claim(
                    order, on=self.today, levels_sent=self.level, config=config, rates=self.rates,
                    first_deadline=deadline if self.level == DunningLevel.FIRST else firsts.get(order.id),
                    payments=payments.get(order.id, []))
                row = Reminder(order=order, level=self.level, trigger=self.trigger, sent_by=self.user, run=self.run,
                               template=template, recipient=order.customer_email, claim=claim, created_at=self.now,
                               claim_snapshot=owed.snapshot(), deadline=deadline)
                try:
                    rendered = render_reminder(self.resolver.compiled(template), order, level=self.level, now=self.now,
                                               claim=owed, deadline=deadline)
                except Exception as exc:  # one broken template fails its reminders, not the run
                    row.status = Reminder.Status.FAILED
                    row.error = stored_text(gettext_noop("Template %(template)s: %(error)s"), template=template,
                                            error=error_text(exc))
                    outcome.failed[order.id] = row.error
                else:
                    row.subject, row.body, row.html_body = rendered.subject, rendered.body, rendered.html_body
                    rendered_by_order[order.id] = rendered
                    rows_by_order[order.id] = row
                rows.append(row)
            claimed_ids = self._insert_claimed(rows, claim) if rows else {}
        unclaimed = set(chunk) - set(orders)
        if unclaimed:
            for order_id, reason in self._diagnose(unclaimed).items():
                outcome.skipped.setdefault(order_id, reason)
        for order_id in set(rendered_by_order) - set(claimed_ids):
            outcome.skipped[order_id] = Skip.IN_FLIGHT
        key = claim_lock_key(claim) if claim_lock_key(claim) in self._claim_locks else None
        items = [_Claimed(reminder_id, order_id, build_message(orders[order_id], rendered_by_order[order_id],
                                                               level=self.level, reminder_id=reminder_id,
                                                               letter_pdf=self._letter(rows_by_order[order_id],
                                                                                       reminder_id)),
                          order_number=orders[order_id].number, sales_account_id=orders[order_id].sales_account_id,
                          claim_key=key)
                 for order_id, reminder_id in sorted(claimed_ids.items())]
        if key is not None:
            self._claim_locks[key] = len(items)
            self._settle([])  # nothing claimed: the lock goes at once
        return items

    def _insert_claimed(self, rows: list[Reminder], claim: uuid.UUID) -> dict[int, int]:
        """INSERT the claim's reminders; returns order id -> reminder id of its pending ones.

        The orders are locked by this transaction and none had a live reminder of this level after
        the lock (`live`), and only a claim inserts reminders, so no row can conflict: they go in by
        COPY (common/bulk.py), a third of the CPU of the ORM's INSERT. Should the unique constraint
        fire all the same, the savepoint is rolled back and they go in with ON CONFLICT DO NOTHING:
        the row already there stands."""
        try:
            with transaction.atomic():
                insert_rows(Reminder, rows)
        except IntegrityError:
            logger.warning("a claim's reminders conflicted with a live one; inserting those that do not")
            for row in rows:
                row.pk = None
            Reminder.objects.bulk_create(rows, ignore_conflicts=True)
            return dict(Reminder.objects.filter(claim=claim, status=Reminder.Status.PENDING)
                        .values_list("order_id", "id"))
        return {row.order_id: row.pk for row in rows if row.status == Reminder.Status.PENDING}

    def _settle(self, items: list[_Claimed]) -> None:
        """`items` were handed over or withdrawn: a claim none of whose reminders waits any more
        drops its advisory lock (nobody may withdraw what was handed over anyway)."""
        for item in items:
            if item.claim_key is not None and item.claim_key in self._claim_locks:
                self._claim_locks[item.claim_key] -= 1
        for key in [k for k, waiting in self._claim_locks.items() if waiting <= 0]:
            del self._claim_locks[key]
            with contextlib.suppress(Exception):  # a lost session has already dropped its locks
                _advisory("pg_advisory_unlock", key)

    def _letter(self, row: Reminder, reminder_id: int) -> bytes | None:
        """The letter of a claimed reminder when its assignment attaches it (rendered after the
        claim committed, from the row as written). A letter that cannot be rendered does not hold
        the e-mail back: it goes without, and the error is logged."""
        if row.order.sales_account_id not in self.resolver.attach_pdf:
            return None
        if self._letter_assets is None:
            self._letter_assets = letters.LetterAssets(texts=letters.LetterTextResolver(self.resolver.attach_pdf),
                                                       logos={})
        row.pk = reminder_id
        try:
            return letters.render_letters_pdf([row], assets=self._letter_assets)
        except Exception:
            logger.exception("could not render the letter of reminder %s; sent without it", reminder_id)
            return None

    def _diagnose(self, order_ids: set[int]) -> dict[int, str]:
        """Why orders of a chunk were not claimed, from the same checks the Notify confirmation
        counts with: one query for the chunk. An order that passes them all was locked by another
        run right now (busy). Fills `outcome.accounts` for them on the way."""
        checks = selectors.due_checks(self.level, now=self.now, configs=self.configs, automatic=self.automatic)
        rows = (Order.objects.filter(id__in=order_ids).annotate(skip_reason=selectors.skip_reason(checks))
                .values_list("id", "sales_account_id", "skip_reason"))
        reasons = dict.fromkeys(order_ids, Skip.NOT_AT_LEVEL.value)  # gone meanwhile: deleted
        for order_id, account_id, reason in rows:
            self.outcome.accounts[order_id] = account_id
            reasons[order_id] = reason or Skip.BUSY
        return reasons

    # --- sending and recording ---

    def _thread_connection(self):
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = provider_connection()
            self._local.connection = connection
            with self._connections_lock:
                self._connections.append(connection)
        return connection

    def _send_one(self, item: _Claimed) -> tuple[str, str, str]:
        """In a sending thread: only the provider call, no database."""
        return send_message(item.message, self._thread_connection(), throttle=True)

    def _send_inline(self, item: _Claimed) -> tuple[str, str, str]:
        """In this thread, measuring how much of the call is CPU: a call that mostly computes
        (an instant provider, a relay on localhost) gains nothing from threads, which only fight
        over the interpreter lock with this thread's database work."""
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return self._send_one(item)
        finally:
            wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
            share = cpu / wall if wall > 0 else 1.0
            self._cpu_share = share if self._probed == 0 else 0.8 * self._cpu_share + 0.2 * share
            self._probed += 1
            if self._probed >= PROBE_CALLS:
                _LEARNT[settings.EMAIL_BACKEND] = (self._cpu_share, time.monotonic())

    def _threads_pay(self) -> bool:
        """Decided on the first PROBE_CALLS calls, sent in this thread; after that, while calls
        stay mostly CPU they go on in this thread; once a call mostly waits, threads take over
        for the rest of the batch."""
        if self.concurrency == 1 or self._probed < PROBE_CALLS:
            return False
        if self._pool is None and self._cpu_share < CPU_BOUND_SHARE:
            self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="dunning-send")
        return self._pool is not None

    def _submit(self, item: _Claimed) -> Future:
        if self._threads_pay():
            return self._pool.submit(self._send_one, item)
        future: Future = Future()  # sent in this thread
        try:
            future.set_result(self._send_inline(item))
        except BaseException as exc:
            future.set_exception(exc)
        return future

    def _mark_handed(self, fresh: list[_Claimed]) -> set[int]:
        """In the caller's transaction: record that `fresh` (never handed over) are about to go to
        the provider (one UPDATE). Returns the reminder ids still ours (a claim withdrawn meanwhile
        because our session was lost is not sent)."""
        ids = [i.reminder_id for i in fresh]
        if db_connection.vendor == "postgresql":
            # plain SQL: this runs once per hand-over, often for a few reminders, and the ORM's
            # compiling of the UPDATE cost more than the statement; RETURNING: the ids are read
            # with it (a rowcount is not known yet in a pipeline, common.bulk.pipelined)
            with db_connection.cursor() as cursor:
                cursor.execute(f"UPDATE {Reminder._meta.db_table} SET handed_at = %s "  # noqa: S608 - model's table
                               "WHERE id = ANY(%s) AND status = %s AND handed_at IS NULL RETURNING id",
                               [self.now, ids, Reminder.Status.PENDING.value])
                return {row[0] for row in cursor.fetchall()}
        marked = Reminder.objects.filter(id__in=ids, status=Reminder.Status.PENDING,
                                         handed_at__isnull=True).update(handed_at=self.now)
        if marked == len(fresh):
            return set(ids)
        return set(Reminder.objects.filter(id__in=ids, status=Reminder.Status.PENDING, handed_at=self.now)
                   .values_list("id", flat=True))

    def _flush(self, results: list[tuple[_Claimed, str, str, str]], items: list[_Claimed]) -> list[_Claimed]:
        """One transaction (one commit): write back `results` and mark `items` as handed over.
        Returns the items to send. Safe to repeat whole (`retrying`): nothing outside the database
        changes before it commits."""
        fresh = [i for i in items if not i.handed]  # a throttled message keeps its first handed_at
        with transaction.atomic(), pipelined():
            written = self._write_back(results) if results else None
            still = self._mark_handed(fresh) if fresh else set()
        if written:
            self._count(*written)
        if fresh:
            for item in fresh:
                item.handed = True
                if item.reminder_id not in still:
                    self.outcome.skipped[item.order_id] = Skip.IN_FLIGHT
            items = [i for i in items if i not in fresh or i.reminder_id in still]
            self._settle(fresh)
        return items

    def send_ids(self, order_ids: Iterable[int], *, group: int, large_group: int) -> None:
        """Claim `order_ids` in groups and send them as a pipeline, up to `concurrency` provider
        calls at once, each in a thread of its own with its own connection; this thread alone
        touches the database. Sends start as soon as the first group is claimed: the next group is
        claimed while the calls of the one before are in flight, whenever fewer than a window
        (`concurrency`) of claimed reminders wait. Groups are `group` orders while the calls wait
        for the provider, `large_group` once they are seen to be CPU-bound (sent in this thread,
        where a larger claim costs fewer statements and overlaps nothing anyway).

        At most `concurrency` reminders are ever handed over and not yet written back (in flight,
        results not yet recorded, throttled ones waiting to go again): what a crash leaves in the
        unknown state. Results are written back and the next messages marked as handed over in one
        transaction, before the window fills. Tokens of the rate limit are taken per hand-over. A
        429 with Retry-After pauses the limit for everyone and the message is handed over again;
        retry backoff sleeps only in its thread."""
        ids = iter(order_ids)
        window = self.concurrency
        record_at = max(1, window // 8)  # with more waiting: write back once this many results are in
        queue: deque[_Claimed] = deque()
        in_flight: dict[Future, _Claimed] = {}
        results: list[tuple[_Claimed, str, str, str]] = []
        stop_error = ""
        exhausted = False
        throttled = 0  # handed over, answered 429, waiting in the queue to go again
        claimed_any = False
        try:
            while True:
                more = bool(queue) and not stop_error  # claimed reminders wait for a slot
                slots = window - len(in_flight) - len(results) - throttled  # free without writing back
                write = bool(results) and (not in_flight or (more and (len(results) >= record_at or slots <= 0)))
                free = slots + (len(results) if write else 0)
                items: list[_Claimed] = []
                pause = 0.0
                if more and free > 0:
                    granted, pause = self.limiter.take(min(free, len(queue)))
                    items = [queue.popleft() for _ in range(granted)]
                    throttled -= sum(1 for i in items if i.handed)
                if write or items:
                    written, results = (results, []) if write else ([], results)
                    items = retrying(lambda r=written, i=items: self._flush(r, i))
                    for item in items:
                        in_flight[self._submit(item)] = item
                    if self._pool is not None and self._recorder_pays():
                        # the calls wait for the provider: from now on a recording thread writes back
                        recorder = _Recorder(self, window)
                        try:
                            recorder.adopt(in_flight, results, throttled)
                            in_flight, results, throttled = {}, [], 0
                            recorder.run(queue, ids, large_group if recorder.hands_over else group, stop_error)
                        finally:
                            recorder.close()
                        return
                    continue
                if not exhausted and not stop_error and len(queue) < window:
                    size = group if (self._pool is not None or self._probed < PROBE_CALLS) else large_group
                    if not claimed_any and self._probed >= PROBE_CALLS and self._cpu_share < CPU_BOUND_SHARE:
                        # the calls are known to wait: the first claim fills one window, so sending starts
                        # sooner, and the recording thread hands over while the rest is claimed
                        size = min(size, window)
                    claimed_any = True
                    chunk = list(itertools.islice(ids, size))
                    if chunk:
                        queue.extend(retrying(lambda chunk=chunk: self.claim(chunk)))
                    else:
                        exhausted = True
                    continue
                if not in_flight:
                    if not more:
                        break
                    time.sleep(min(max(pause, 0.001), 1.0))
                    continue
                timeout = min(max(pause, 0.001), 1.0) if (more and pause) else None
                # nothing waits for a slot: let all in flight finish and write them back in one set
                done, _ = wait(in_flight, timeout=timeout, return_when=FIRST_COMPLETED if more else ALL_COMPLETED)
                for future in done:
                    item = in_flight.pop(future)
                    kind, mid, err = future.result()
                    if kind == THROTTLED:
                        item.throttled += 1
                        if item.throttled <= MAX_THROTTLED:
                            self.limiter.pause(float(err))
                            queue.appendleft(item)  # handed over again: it keeps its handed_at
                            throttled += 1
                            continue
                        kind = TRANSIENT
                        err = stored_text(gettext_noop("Provider kept answering 429 Too Many Requests"))
                    results.append((item, kind, mid, err))
                    self._transient_in_a_row = self._transient_in_a_row + 1 if kind == TRANSIENT else 0
                    if self._transient_in_a_row >= GIVE_UP_AFTER and not stop_error:
                        stop_error = err  # hand nothing more over; let what is in flight finish
        finally:
            if in_flight:  # only when this thread itself failed: what went out is still recorded
                for future in list(in_flight):
                    future.cancel()
            if results:
                retrying(lambda: self._flush(results, []))
        if stop_error:
            self.release_unsent(list(queue))
            raise ProviderUnavailable(stop_error, self.outcome)

    def _recorder_pays(self) -> bool:
        """A second database connection can write back only what the first committed: not inside
        a caller's transaction (a test's, or an atomic block around the call)."""
        return not db_connection.in_atomic_block

    def _write_back(self, results: list[tuple[_Claimed, str, str, str]]):
        """In the caller's transaction: the outcome of sent e-mails, set-based."""
        sent = [(item, mid) for item, kind, mid, _err in results if kind == SENT]
        failed = [(item, err) for item, kind, _mid, err in results if kind in (TRANSIENT, PERMANENT)]
        unknown = [(item, err) for item, kind, _mid, err in results if kind == AMBIGUOUS]
        if sent:
            reminders_mark_sent([WentOut(item.reminder_id, item.order_id, self.level, mid) for item, mid in sent],
                                sent_at=self.now, now=self.now, exact=True)
            order_events_log(
                [(item.order_id, {"level": self.level, "trigger": self.trigger, "reminder": item.reminder_id})
                 for item, _ in sent],
                action=OrderEvent.Action.REMINDER_SENT, at=self.now, user=self.user)
            accounts = {item.sales_account_id for item, _ in sent}
            if self.endpoints is None or not accounts <= self._endpoint_accounts:
                self._endpoint_accounts |= accounts  # (an account without a config of its own: not expected)
                self.endpoints = endpoints_wanting(EventType.REMINDER_SENT, self._endpoint_accounts)
            events_emit(EventType.REMINDER_SENT, [
                (item.sales_account_id, {"order_number": item.order_number, "level": self.level,
                                         "trigger": self.trigger, "sent_at": self.now.isoformat()})
                for item, _ in sent], now=self.now, endpoints=self.endpoints)
        by_error: dict[str, list[int]] = defaultdict(list)
        for item, err in failed:
            by_error[err].append(item.reminder_id)
        for err, ids in by_error.items():
            reminders_mark_failed(ids, error=err, now=self.now)
        for item, err in unknown:
            reminders_mark_outcome_unknown([item.reminder_id], error=err, now=self.now)
        return sent, failed, unknown

    def _count(self, sent, failed, unknown) -> None:
        self.outcome.sent += [item.order_id for item, _ in sent]
        self.outcome.failed.update({item.order_id: err for item, err in failed})
        self.outcome.unknown += [item.order_id for item, _ in unknown]

    def release_unsent(self, items: list[_Claimed]) -> None:
        """Claimed reminders never handed to the provider are withdrawn, so a later run sends them."""
        reminders_withdraw([i.reminder_id for i in items])
        for item in items:
            self.outcome.skipped[item.order_id] = Skip.PROVIDER_DOWN
        self._settle([i for i in items if not i.handed])

    def release_claim_locks(self) -> None:
        """The chunk is worked: everything claimed was handed over or withdrawn."""
        while self._claim_locks:
            key, _waiting = self._claim_locks.popitem()
            with contextlib.suppress(Exception):  # a lost session has already dropped its locks
                _advisory("pg_advisory_unlock", key)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self.release_claim_locks()
        for connection in [self.connection, *self._connections]:
            if connection is not None:
                with contextlib.suppress(Exception):  # closing a broken connection must not hide the real error
                    connection.close()


class _Recorder:
    """The pipeline once calls wait for the provider (a thread pool sends them): a thread of its own
    with its own database connection writes back answered reminders as soon as they arrive, in
    whatever set has gathered while the previous one was written (one transaction each), while
    the run's thread claims. A slot (`window` of them) is taken when a reminder is handed over and
    freed only when its result is committed, so at most `window` reminders are ever handed over and
    not written back, whatever the threads do: what a crash leaves unknown.

    Without a shared rate limit the recording thread also hands over: in the transaction that writes
    back a set of results it marks as many claimed reminders as handed over as that set frees (and
    any slot free besides), and sends them once it commits. A slot is thus taken again the moment it
    is freed, in the same commit, instead of waiting for the run's thread, which may be busy with a
    claim (measured: docs/benchmarks-sending.md). The run's thread hands over the first window, what
    a 429 sends again, and everything when a rate limit applies (its tokens are taken per hand-over).

    Shared state is guarded by `cond`: `used` (slots, including those reserved for a hand-over being
    committed), `queue` (claimed reminders not yet handed over, and 429s waiting to go again),
    `answered` (results for the recording thread), `again` (429 with Retry-After: handed over again
    by the run's thread, keeping their slot), `to_settle` (handed over by the recording thread: the
    run's thread drops their claim's advisory lock, which its own session holds)."""

    def __init__(self, batch: SendBatch, window: int) -> None:
        self.batch = batch
        self.window = window
        self.cond = threading.Condition()
        self.used = 0
        self.queue: deque[_Claimed] = deque()
        self.answered: list[tuple[_Claimed, str, str, str]] = []
        self.again: list[tuple[_Claimed, float]] = []
        self.to_settle: list[_Claimed] = []
        self.futures: set[Future] = set()
        self.stop_error = ""
        self.failure: BaseException | None = None  # the recording thread's, raised in the run's thread
        self.closing = False
        # the shared token bucket is taken per hand-over by the run's thread; without one (only a
        # 429's pause, this process's own) the recording thread may hand over too
        self.hands_over = isinstance(batch.limiter, LocalLimiter)
        self.thread = threading.Thread(target=self._record_loop, name="dunning-record", daemon=True)
        self.thread.start()

    # --- the sending threads (done callbacks) ---

    def _done(self, item: _Claimed, future: Future) -> None:
        if future.cancelled():
            with self.cond:  # handed over, never sent: stays pending (unknown), as after a crash
                self.futures.discard(future)
                self.used -= 1
                self.cond.notify_all()
            return
        try:
            kind, mid, err = future.result()
        except BaseException as exc:  # a bug in the call: stop, as the run's thread would
            with self.cond:
                self.futures.discard(future)
                self.failure = self.failure or exc
                self.used -= 1
                self.cond.notify_all()
            return
        self._answer(item, kind, mid, err, future)

    def _answer(self, item: _Claimed, kind: str, mid: str, err: str, future: Future | None = None) -> None:
        batch = self.batch
        with self.cond:
            self.futures.discard(future)
            if kind == THROTTLED:
                item.throttled += 1
                if item.throttled <= MAX_THROTTLED:
                    self.again.append((item, float(err)))
                    self.cond.notify_all()
                    return
                kind = TRANSIENT
                err = stored_text(gettext_noop("Provider kept answering 429 Too Many Requests"))
            self.answered.append((item, kind, mid, err))
            batch._transient_in_a_row = batch._transient_in_a_row + 1 if kind == TRANSIENT else 0
            if batch._transient_in_a_row >= GIVE_UP_AFTER and not self.stop_error:
                self.stop_error = err  # hand nothing more over; let what is in flight finish
            self.cond.notify_all()

    def _send(self, items: list[_Claimed]) -> None:
        """Submit handed-over `items` to the sending threads (their slots are already counted)."""
        submitted = []
        for item in items:
            with self.cond:  # known before its callback (which takes the lock) can run
                future = self.batch._pool.submit(self.batch._send_one, item)
                self.futures.add(future)
            submitted.append((future, item))
        for future, item in submitted:
            future.add_done_callback(lambda f, item=item: self._done(item, f))

    # --- the recording thread ---

    def _take_fresh(self, freed: int) -> list[_Claimed]:
        """Under `cond`: claimed reminders to hand over in the transaction that writes back `freed`
        results, as many as slots are free once it commits; their slots are reserved at once, so
        the run's thread cannot give them away meanwhile."""
        if not self.hands_over or self.stop_error or self.failure is not None or self.closing:
            return []
        if self.batch.limiter.take(1)[0] == 0:  # a 429's pause is on
            return []
        fresh: list[_Claimed] = []
        room = self.window - self.used + freed
        while room > len(fresh) and self.queue and not self.queue[0].handed:
            fresh.append(self.queue.popleft())
        self.used += len(fresh)
        return fresh

    def _record_loop(self) -> None:
        from django.db import connections

        try:
            while True:
                with self.cond:
                    while not self.answered and not (self.closing and not self.futures):
                        self.cond.wait()
                    if not self.answered:
                        return
                    results, self.answered = self.answered, []
                    fresh = self._take_fresh(len(results))
                try:
                    written, still = retrying(lambda r=results, f=fresh: self._write(r, f))
                except BaseException as exc:
                    with self.cond:
                        self.failure = self.failure or exc
                        self.queue.extendleft(reversed(fresh))  # never handed over: claimed, as before
                        self.used -= len(fresh)
                        self.cond.notify_all()
                    return
                handed = [i for i in fresh if i.reminder_id in still]
                with self.cond:
                    self.batch._count(*written)
                    for item in fresh:
                        item.handed = True
                        if item.reminder_id not in still:  # withdrawn meanwhile (our session was lost)
                            self.batch.outcome.skipped[item.order_id] = Skip.IN_FLIGHT
                    self.used -= len(results) + len(fresh) - len(handed)
                    self.to_settle.extend(fresh)
                    self.cond.notify_all()
                self._send(handed)
        finally:
            connections.close_all()  # this thread's own connection

    def _write(self, results, fresh: list[_Claimed]):
        """One transaction: write back `results`, mark `fresh` as handed over (the reminder ids still
        ours). Safe to repeat whole (`retrying`)."""
        with transaction.atomic(), pipelined():
            written = self.batch._write_back(results)
            still = self.batch._mark_handed(fresh) if fresh else set()
        return written, still

    # --- the run's thread ---

    def adopt(self, in_flight: dict[Future, _Claimed], results: list, throttled: int) -> None:
        """Take over what the run's thread had handed over so far."""
        with self.cond:
            self.used = len(in_flight) + len(results) + throttled
            self.answered.extend(results)
            self.futures.update(in_flight)
            self.cond.notify_all()
        for future, item in in_flight.items():
            future.add_done_callback(lambda f, item=item: self._done(item, f))

    def run(self, queue: deque[_Claimed], ids, group: int, stop_error: str) -> None:
        batch = self.batch
        exhausted = False
        with self.cond:
            self.queue.extend(queue)
            queue.clear()
            self.stop_error = self.stop_error or stop_error
        pause = 0.0
        while True:
            with self.cond:
                if self.failure is not None:
                    raise self.failure
                again, self.again = self.again, []
                settle, self.to_settle = self.to_settle, []
                for item, _retry_after in again:
                    self.queue.appendleft(item)  # handed over again: it keeps its handed_at and its slot
                free = self.window - self.used
                stop_error = self.stop_error
                waiting = len(self.queue)
                hand_over = bool(self.queue) and not stop_error and (free > 0 or self.queue[0].handed)
                if hand_over:
                    retaken = list(itertools.takewhile(lambda i: i.handed, self.queue))
                    want = len(retaken) + min(max(free, 0), len(self.queue) - len(retaken))
            if settle:
                batch._settle(settle)
            for _item, retry_after in again:
                batch.limiter.pause(retry_after)
            if hand_over:
                granted, pause = batch.limiter.take(want)
                if granted:
                    with self.cond:
                        # counted again under the lock: the recording thread may have taken slots since
                        room = self.window - self.used
                        items = []
                        while self.queue and len(items) < granted and (self.queue[0].handed or room > 0):
                            item = self.queue.popleft()
                            room -= 0 if item.handed else 1
                            items.append(item)
                        fresh = sum(1 for i in items if not i.handed)
                        self.used += fresh  # taken before handed_at is written: the bound holds throughout
                    taken = len(items)
                    if not items:
                        continue
                    try:
                        items = retrying(lambda i=items: batch._flush([], i))
                    except BaseException:
                        with self.cond:  # not handed over: claimed, as before (withdrawn by release)
                            self.queue.extendleft(reversed([i for i in items if not i.handed]))
                            self.used -= fresh
                        raise
                    if len(items) < taken:  # withdrawn meanwhile (our session was lost): not sent
                        with self.cond:
                            self.used -= taken - len(items)
                    self._send(items)
                    continue
            if not exhausted and not stop_error and waiting < self.window:
                chunk = list(itertools.islice(ids, group))
                if chunk:
                    claimed = retrying(lambda chunk=chunk: batch.claim(chunk))
                    with self.cond:
                        self.queue.extend(claimed)
                else:
                    exhausted = True
                continue
            with self.cond:
                held = sum(1 for i in self.queue if i.handed)  # answered 429, waiting to go again
                if (self.used == held and not self.answered and not self.to_settle
                        and (not self.queue or self.stop_error)):
                    break
                if self.again or self.to_settle or self.failure is not None:
                    continue
                # wait for a slot, a 429 or the end; with a rate pause, at most that long
                self.cond.wait(timeout=min(max(pause, 0.001), 1.0) if pause else 1.0)
        if self.stop_error:
            with self.cond:
                unsent, self.queue = list(self.queue), deque()
            batch.release_unsent(unsent)
            raise ProviderUnavailable(self.stop_error, batch.outcome)

    def close(self) -> None:
        """Let what is in flight finish (cancelling what has not started) and its results be written."""
        with self.cond:
            self.closing = True  # the recording thread hands nothing more over
            futures = list(self.futures)
        for future in futures:
            future.cancel()
        wait(futures)
        with self.cond:
            self.cond.notify_all()
        self.thread.join()


def claim_group(batch_size: int, concurrency: int) -> int:
    """How many orders one claim takes: two windows of sends (so the next group is claimed while
    one is in flight), at least 50 (a claim costs a few statements whatever its size), at most
    `DUNNING_BATCH_SIZE`."""
    return max(1, min(batch_size, max(50, 2 * concurrency)))


def reminders_send(*, order_ids: Iterable[int], level: int, trigger: str, now: datetime.datetime, user=None,
                   run: DunningRun | None = None, configs: list[DunningConfig] | None = None,
                   batch_size: int | None = None) -> SendOutcome:
    """Send the reminder of `level` to each of `order_ids` that is due for it at `now`, exactly once.

    Orders that do not qualify at the moment of sending are skipped with a reason. Raises
    ProviderUnavailable after its outcome is recorded when the provider keeps failing."""
    if level not in DunningLevel.sendable():
        raise ValueError(f"reminders are sent at level 1, 2 or 3, not {level!r}")
    batch = SendBatch(level=level, trigger=trigger, now=now, user=user, run=run,
                      configs=selectors.active_configs() if configs is None else configs)
    try:
        reminders_release_orphans(level=level, now=now)
        size = batch_size or settings.DUNNING_BATCH_SIZE
        batch.send_ids(order_ids, group=claim_group(size, batch.concurrency), large_group=size)
    finally:
        batch.close()
    return batch.outcome
