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
import logging
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import InterfaceError, OperationalError, transaction
from django.db import connection as db_connection

from common.iterables import chunked
from orders.audit import order_events_log
from orders.models import Order, OrderEvent
from webhooks.models import EventType
from webhooks.services import events_emit

from .. import selectors
from ..models import DunningConfig, DunningLevel, DunningRun, EmailTemplate, Reminder, ReminderAssignment
from ..selectors import Skip
from ..templating import CompiledTemplate, RenderedEmail, render_reminder
from .providers import AMBIGUOUS, PERMANENT, SENT, TRANSIENT, build_message, error_text, send_message
from .reminders import (
    WentOut,
    reminders_mark_failed,
    reminders_mark_outcome_unknown,
    reminders_mark_sent,
    reminders_withdraw,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")

RECORD_EVERY = 250  # outcomes are written back every 250 sends: few statements, small crash window
GIVE_UP_AFTER = 5  # transient failures in a row before a run stops


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
        self._assignments = {
            a.sales_account_id: a.template
            for a in ReminderAssignment.objects.filter(level=level).select_related("template")
        }
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
    order_number: str = ""
    sales_account_id: int = 0


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
        self.outcome = SendOutcome()
        self.connection = None  # opened at the first claimed reminder: nothing due costs no connection
        self._transient_in_a_row = 0

    # --- claiming ---

    def claim(self, chunk: list[int]) -> list[_Claimed]:
        """Lock, re-check and write the pending reminders of one chunk; commits before returning."""
        claim = uuid.uuid4()
        outcome = self.outcome
        checks = selectors.delivery_checks(accounts_with_template=self.resolver.accounts)
        with transaction.atomic():
            due = list(selectors.orders_due(self.level, now=self.now, configs=self.configs, automatic=self.automatic,
                                            queryset=Order.objects.filter(id__in=chunk))
                       .annotate(skip_reason=selectors.skip_reason(checks))
                       .select_related("sales_account", "payment_method")
                       .select_for_update(skip_locked=True, of=("self",))
                       .order_by("id"))
            # Race: a concurrent run may have claimed one of these rows between this statement's snapshot
            # and our lock. This query has a fresh snapshot (READ COMMITTED) and sees its committed claim.
            live = set(Reminder.objects.filter(order_id__in=[o.id for o in due], level=self.level)
                       .exclude(status=Reminder.Status.FAILED).values_list("order_id", flat=True))
            rows: list[Reminder] = []
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
                row = Reminder(order=order, level=self.level, trigger=self.trigger, sent_by=self.user, run=self.run,
                               template=template, recipient=order.customer_email, claim=claim, created_at=self.now)
                try:
                    rendered = render_reminder(self.resolver.compiled(template), order, level=self.level, now=self.now)
                except Exception as exc:  # one broken template fails its reminders, not the run
                    row.status = Reminder.Status.FAILED
                    row.error = f"Template {template}: {error_text(exc)}"
                    outcome.failed[order.id] = row.error
                else:
                    row.subject, row.body, row.html_body = rendered.subject, rendered.body, rendered.html_body
                    rendered_by_order[order.id] = rendered
                rows.append(row)
            # ON CONFLICT DO NOTHING: should a concurrent run have won the race, its row stands.
            Reminder.objects.bulk_create(rows, ignore_conflicts=True)
            claimed_ids = dict(Reminder.objects.filter(claim=claim, status=Reminder.Status.PENDING)
                               .values_list("order_id", "id"))
        unclaimed = set(chunk) - set(orders)
        if unclaimed:
            for order_id, reason in self._diagnose(unclaimed).items():
                outcome.skipped.setdefault(order_id, reason)
        for order_id in set(rendered_by_order) - set(claimed_ids):
            outcome.skipped[order_id] = Skip.IN_FLIGHT
        return [_Claimed(reminder_id, order_id, build_message(orders[order_id], rendered_by_order[order_id],
                                                              level=self.level, reminder_id=reminder_id),
                         orders[order_id].number, orders[order_id].sales_account_id)
                for order_id, reminder_id in sorted(claimed_ids.items())]

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

    def send_all(self, claimed: list[_Claimed]) -> None:
        if claimed and self.connection is None:
            self.connection = get_connection()
            self.connection.open()
        for start in range(0, len(claimed), RECORD_EVERY):
            part = claimed[start:start + RECORD_EVERY]
            results = []
            for index, item in enumerate(part):
                kind, mid, err = send_message(item.message, self.connection)
                results.append((item, kind, mid, err))
                self._transient_in_a_row = self._transient_in_a_row + 1 if kind == TRANSIENT else 0
                if self._transient_in_a_row >= GIVE_UP_AFTER:
                    retrying(lambda results=results: self.record(results))
                    self.release_unsent(part[index + 1:] + claimed[start + RECORD_EVERY:])
                    raise ProviderUnavailable(err, self.outcome)
            retrying(lambda results=results: self.record(results))

    def record(self, results: list[tuple[_Claimed, str, str, str]]) -> None:
        """Write back the outcome of sent e-mails in one transaction."""
        sent = [(item, mid) for item, kind, mid, _err in results if kind == SENT]
        failed = [(item, err) for item, kind, _mid, err in results if kind in (TRANSIENT, PERMANENT)]
        unknown = [(item, err) for item, kind, _mid, err in results if kind == AMBIGUOUS]
        with transaction.atomic():
            if sent:
                reminders_mark_sent([WentOut(item.reminder_id, item.order_id, self.level, mid) for item, mid in sent],
                                    sent_at=self.now, now=self.now, exact=True)
                order_events_log(
                    [(item.order_id, {"level": self.level, "trigger": self.trigger, "reminder": item.reminder_id})
                     for item, _ in sent],
                    action=OrderEvent.Action.REMINDER_SENT, at=self.now, user=self.user)
                events_emit(EventType.REMINDER_SENT, [
                    (item.sales_account_id, {"order_number": item.order_number, "level": self.level,
                                             "trigger": self.trigger, "sent_at": self.now.isoformat()})
                    for item, _ in sent], now=self.now)
            by_error: dict[str, list[int]] = defaultdict(list)
            for item, err in failed:
                by_error[err].append(item.reminder_id)
            for err, ids in by_error.items():
                reminders_mark_failed(ids, error=err, now=self.now)
            for item, err in unknown:
                reminders_mark_outcome_unknown([item.reminder_id], error=err, now=self.now)
        self.outcome.sent += [item.order_id for item, _ in sent]
        self.outcome.failed.update({item.order_id: err for item, err in failed})
        self.outcome.unknown += [item.order_id for item, _ in unknown]

    def release_unsent(self, items: list[_Claimed]) -> None:
        """Claimed reminders never handed to the provider are withdrawn, so a later run sends them."""
        reminders_withdraw([i.reminder_id for i in items])
        for item in items:
            self.outcome.skipped[item.order_id] = Skip.PROVIDER_DOWN

    def close(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(Exception):  # closing a broken connection must not hide the real error
                self.connection.close()


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
        for chunk in chunked(order_ids, batch_size or settings.DUNNING_BATCH_SIZE):
            batch.send_all(retrying(lambda chunk=chunk: batch.claim(chunk)))
    finally:
        batch.close()
    return batch.outcome
