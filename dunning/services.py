"""Writes of the dunning domain: sending reminders exactly once, the job, prepayment cancellation.

Sending follows the outbox pattern (STYLE.md, pretix): a chunk of due orders is locked with
`SELECT ... FOR UPDATE SKIP LOCKED`, re-checked against the level rule, and their reminders are
inserted as *pending* (in flight) and committed **before** the e-mail backend is called. Only then
are the e-mails sent, and their outcome written back with set-based UPDATEs. A partial unique
constraint (one non-failed reminder per order and level) is the last line of defence: a second
run, a retried task or a crashed one can never send the same level twice."""

from __future__ import annotations

import contextlib
import datetime
import logging
import smtplib
import socket
import time
import uuid
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.message import make_msgid
from django.db import InterfaceError, OperationalError, transaction
from django.db import connection as db_connection
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from config.iterables import chunked
from orders.models import Order, OrderEvent

from . import selectors
from .models import DunningConfig, DunningRun, EmailTemplate, Reminder, ReminderAssignment
from .templating import CompiledTemplate, RenderedEmail, order_context
from .tracking_token import reminder_token

logger = logging.getLogger(__name__)
T = TypeVar("T")


# --- skip reasons ---------------------------------------------------------------------------

class Skip:
    NOT_AT_LEVEL = "not_at_level"
    NO_EMAIL = "no_email"
    NO_TEMPLATE = "no_template"
    IN_FLIGHT = "in_flight"
    BUSY = "busy"
    BOUNCED = "bounced"
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"
    PROVIDER_DOWN = "provider_down"

    LABELS = {
        NOT_AT_LEVEL: _("no longer at this level (paid, cancelled, blocked or reminded meanwhile)"),
        NO_EMAIL: _("no e-mail address"),
        NO_TEMPLATE: _("no template assigned for this level"),
        IN_FLIGHT: _("a reminder of this level is already sent or in flight"),
        BUSY: _("being processed by another run"),
        ATTEMPTS_EXHAUSTED: _("failed three times; send it by hand"),
        PROVIDER_DOWN: _("not attempted: the e-mail provider was unavailable"),
        BOUNCED: _("an earlier reminder to this address bounced or was marked as spam; correct the address"),
    }


@dataclass
class SendOutcome:
    sent: list[int] = field(default_factory=list)  # order ids
    failed: dict[int, str] = field(default_factory=dict)  # order id -> error
    skipped: dict[int, str] = field(default_factory=dict)  # order id -> Skip.*
    unknown: list[int] = field(default_factory=list)  # order ids whose outcome the provider left unclear
    accounts: dict[int, int] = field(default_factory=dict)  # order id -> sales account id, for summaries

    @property
    def skip_counts(self) -> dict[str, int]:
        return dict(Counter(self.skipped.values()))


# --- templates --------------------------------------------------------------------------------

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


# --- provider errors --------------------------------------------------------------------------

TRANSIENT, PERMANENT, AMBIGUOUS = "transient", "permanent", "ambiguous"


def classify_send_error(exc: BaseException) -> str:
    """transient: nothing was delivered and trying again may work (connection refused, 429, 5xx);
    permanent: trying again will not help (4xx, invalid address); ambiguous: the request may have
    reached the provider (read timeout), so it must not be sent again blindly."""
    from anymail.exceptions import AnymailError, AnymailInvalidAddress, AnymailRecipientsRefused

    if isinstance(exc, AnymailRecipientsRefused | AnymailInvalidAddress):
        return PERMANENT
    if isinstance(exc, AnymailError):
        status = getattr(exc, "status_code", None)
        if status is not None:
            return TRANSIENT if status == 429 or status >= 500 else PERMANENT
        cause = exc.__cause__
        if cause is not None:
            return classify_send_error(cause)
        return PERMANENT
    try:
        import requests

        if isinstance(exc, requests.exceptions.ConnectTimeout | requests.exceptions.ConnectionError):
            return TRANSIENT
        if isinstance(exc, requests.exceptions.Timeout):
            return AMBIGUOUS
    except ImportError:  # pragma: no cover - requests comes with anymail
        pass
    if isinstance(exc, smtplib.SMTPRecipientsRefused | smtplib.SMTPSenderRefused):
        return PERMANENT
    if isinstance(exc, smtplib.SMTPResponseException):
        return TRANSIENT if 400 <= exc.smtp_code < 500 else PERMANENT
    if isinstance(exc, smtplib.SMTPServerDisconnected | ConnectionError | socket.gaierror):
        return TRANSIENT
    if isinstance(exc, TimeoutError | socket.timeout):
        return AMBIGUOUS
    return PERMANENT


def _error_text(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:  # some providers' exceptions fail to describe themselves
        text = repr(exc.args)
    return f"{type(exc).__name__}: {text}"[:2000]


class ProviderUnavailable(Exception):
    """Several sends in a row failed transiently: stop this run instead of hammering the provider.
    `outcome` holds what was recorded up to then."""

    def __init__(self, message: str, outcome: SendOutcome) -> None:
        super().__init__(message)
        self.outcome = outcome


# --- sending ----------------------------------------------------------------------------------

@dataclass
class _Claimed:
    reminder_id: int
    order_id: int
    message: EmailMultiAlternatives


def _build_message(order: Order, rendered: RenderedEmail, *, level: int, reminder_id: int) -> EmailMultiAlternatives:
    account = order.sales_account
    domain = account.sender_email.rpartition("@")[2] or "localhost"
    msg = EmailMultiAlternatives(
        subject=rendered.subject,
        body=rendered.body,
        from_email=account.sender_email,
        to=[order.customer_email],
        reply_to=[account.reply_to_email] if account.reply_to_email else None,
        headers={"Message-ID": make_msgid("reminder", domain=domain)},
    )
    if rendered.html_body:
        msg.attach_alternative(rendered.html_body, "text/html")
    # anymail: sent along to the provider, echoed back by its tracking webhooks
    msg.metadata = {"reminder_token": reminder_token(reminder_id), "order": order.number}
    msg.tags = [f"dunning-level-{level}"]  # one tag: Postmark refuses more than one
    return msg


def _retrying(step: Callable[[], T], attempts: int = 4) -> T:
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


def _claim(chunk: list[int], *, level: int, trigger: str, now: datetime.datetime, user, run: DunningRun | None,
           configs: list[DunningConfig], resolver: TemplateResolver, outcome: SendOutcome) -> list[_Claimed]:
    """Lock, re-check and write the pending reminders of one chunk; commits before returning."""
    automatic = trigger == Reminder.Trigger.AUTOMATIC
    claim = uuid.uuid4()
    today = selectors.local_today(now)
    with transaction.atomic():
        due = (selectors.orders_due(level, now=now, configs=configs, automatic=automatic,
                                    queryset=Order.objects.filter(id__in=chunk))
               .select_related("sales_account", "payment_method")
               .select_for_update(skip_locked=True, of=("self",))
               .order_by("id"))
        rows: list[Reminder] = []
        rendered_by_order: dict[int, RenderedEmail] = {}
        orders: dict[int, Order] = {}
        due = list(due)
        locked_ids = [o.id for o in due]
        # Race: a concurrent run may have claimed one of these rows between this statement's snapshot
        # and our lock. This query has a fresh snapshot (READ COMMITTED) and sees its committed claim.
        live = set(Reminder.objects.filter(order_id__in=locked_ids, level=level)
                   .exclude(status=Reminder.Status.FAILED).values_list("order_id", flat=True))
        bounced = set(Reminder.objects.filter(
            order_id__in=locked_ids, status__in=[Reminder.Status.BOUNCED, Reminder.Status.COMPLAINED],
        ).values_list("order_id", "recipient"))
        for order in due:
            orders[order.id] = order
            outcome.accounts[order.id] = order.sales_account_id
            if order.id in live:
                outcome.skipped[order.id] = Skip.IN_FLIGHT
                continue
            if not order.customer_email:
                outcome.skipped[order.id] = Skip.NO_EMAIL
                continue
            if (order.id, order.customer_email) in bounced:
                outcome.skipped[order.id] = Skip.BOUNCED
                continue
            template = resolver.template_for(order.sales_account_id, order.effective_language)
            if template is None:
                outcome.skipped[order.id] = Skip.NO_TEMPLATE
                continue
            row = Reminder(order=order, level=level, trigger=trigger, sent_by=user, run=run, template=template,
                           recipient=order.customer_email, claim=claim, created_at=now)
            try:
                rendered = resolver.compiled(template).render(
                    order_context(order, level=level, today=today, language=order.effective_language))
            except Exception as exc:  # one broken template fails its reminders, not the run
                row.status = Reminder.Status.FAILED
                row.error = f"Template {template}: {_error_text(exc)}"
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
        reasons = _diagnose_skips(unclaimed, level=level, now=now, configs=configs, automatic=automatic,
                                  accounts=outcome.accounts)
        for order_id in unclaimed:
            outcome.skipped.setdefault(order_id, reasons[order_id])
    for order_id in set(rendered_by_order) - set(claimed_ids):
        outcome.skipped[order_id] = Skip.IN_FLIGHT
    claimed = []
    for order_id, reminder_id in sorted(claimed_ids.items()):
        message = _build_message(orders[order_id], rendered_by_order[order_id], level=level, reminder_id=reminder_id)
        claimed.append(_Claimed(reminder_id, order_id, message))
    return claimed


def _diagnose_skips(order_ids: set[int], *, level: int, now: datetime.datetime, configs: list[DunningConfig],
                    automatic: bool, accounts: dict[int, int]) -> dict[int, str]:
    """Why orders of a chunk were not claimed: four queries for the whole chunk, not per order.
    Fills `accounts` (order id -> sales account id) for them on the way."""
    base = Order.objects.filter(id__in=order_ids)
    accounts.update(base.values_list("id", "sales_account_id"))
    at_level = set(selectors.orders_at_level(level, now=now, configs=configs, queryset=base)
                   .values_list("id", flat=True))
    live = set(base.filter(selectors.live_reminder_exists(level)).values_list("id", flat=True))
    exhausted = (set(base.filter(selectors.attempts_exhausted(level)).values_list("id", flat=True))
                 if automatic else set())
    reasons = {}
    for order_id in order_ids:
        if order_id not in at_level:
            reasons[order_id] = Skip.NOT_AT_LEVEL
        elif order_id in live:
            reasons[order_id] = Skip.IN_FLIGHT
        elif order_id in exhausted:
            reasons[order_id] = Skip.ATTEMPTS_EXHAUSTED
        else:
            reasons[order_id] = Skip.BUSY  # locked by another run right now
    return reasons


def _send_one(item: _Claimed, connection) -> tuple[str, str, str]:
    """Send with retries and backoff on transient errors. Returns (result, message_id, error)."""
    attempts = max(1, settings.DUNNING_SEND_RETRIES)
    for attempt in range(1, attempts + 1):
        try:
            item.message.connection = connection
            item.message.send()
        except Exception as exc:
            kind = classify_send_error(exc)
            if kind == TRANSIENT and attempt < attempts:
                time.sleep(settings.DUNNING_RETRY_BACKOFF_SECONDS * 2 ** (attempt - 1))
                continue
            return kind, "", _error_text(exc)
        status = getattr(item.message, "anymail_status", None)
        message_id = (getattr(status, "message_id", None) if status else None) or item.message.extra_headers.get(
            "Message-ID", "")
        return "sent", str(message_id)[:255], ""
    raise AssertionError("unreachable")  # pragma: no cover


def _mark_sent(pairs: list[tuple[int, str]], now: datetime.datetime) -> None:
    """Mark reminders sent with their provider message ids. A fast provider's webhook may already
    have moved one on (delivered, bounced): that status is kept, only sent_at is set."""
    pending = Reminder.Status.PENDING
    if db_connection.vendor == "postgresql":
        # One UPDATE ... FROM (VALUES ...) instead of one per row or bulk_update's CASE per row.
        table = Reminder._meta.db_table
        values = ", ".join(["(%s, %s)"] * len(pairs))
        params: list[Any] = [pending, Reminder.Status.SENT, pending, now, now]
        params += [p for pair in pairs for p in pair]
        with db_connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} AS r SET "  # noqa: S608
                "status = CASE WHEN r.status = %s THEN %s ELSE r.status END, "
                "status_changed_at = CASE WHEN r.status = %s THEN %s ELSE r.status_changed_at END, "
                f"sent_at = %s, message_id = v.mid FROM (VALUES {values}) AS v(id, mid) WHERE r.id = v.id::bigint",
                params)
        return
    ids = [i for i, _ in pairs]
    Reminder.objects.filter(id__in=ids, status=pending).update(status=Reminder.Status.SENT, status_changed_at=now)
    Reminder.objects.filter(id__in=ids).update(sent_at=now)
    Reminder.objects.bulk_update([Reminder(id=i, message_id=m) for i, m in pairs if m], ["message_id"],
                                 batch_size=500)


def orders_mark_reminded(order_ids: Iterable[int], *, level: int, at: datetime.datetime) -> int:
    """Move orders up to `level` once its reminder is known to have gone out. Only orders one level
    below move, so the paths that may confirm the same reminder (this write-back, a delivery
    webhook, staff resolving an in-flight reminder) can each call it, in any order."""
    return Order.objects.filter(id__in=list(order_ids), reminders_sent=level - 1).update(
        reminders_sent=level, last_reminder_at=at)


def _record(results: list[tuple[_Claimed, str, str, str]], *, level: int, trigger: str, now: datetime.datetime,
            user, outcome: SendOutcome) -> None:
    sent = [(item, mid) for item, kind, mid, _err in results if kind == "sent"]
    failed = [(item, err) for item, kind, _mid, err in results if kind in (TRANSIENT, PERMANENT)]
    unknown = [(item, err) for item, kind, _mid, err in results if kind == AMBIGUOUS]
    with transaction.atomic():
        if sent:
            _mark_sent([(item.reminder_id, mid) for item, mid in sent], now)
            orders_mark_reminded([item.order_id for item, _ in sent], level=level, at=now)
            OrderEvent.objects.bulk_create([
                OrderEvent(order_id=item.order_id, action="reminder_sent", user=user, at=now,
                           details={"level": level, "trigger": trigger, "reminder": item.reminder_id})
                for item, _ in sent])
        by_error: dict[str, list[int]] = defaultdict(list)
        for item, err in failed:
            by_error[err].append(item.reminder_id)
        for err, ids in by_error.items():
            Reminder.objects.filter(id__in=ids).update(status=Reminder.Status.FAILED, error=err,
                                                       status_changed_at=now)
        for item, err in unknown:
            Reminder.objects.filter(id=item.reminder_id).update(
                error=f"Outcome unknown, not sent again automatically: {err}", status_changed_at=now)
    outcome.sent += [item.order_id for item, _ in sent]
    outcome.failed.update({item.order_id: err for item, err in failed})
    outcome.unknown += [item.order_id for item, _ in unknown]


def _release_unsent(items: list[_Claimed], outcome: SendOutcome) -> None:
    """Claimed reminders never handed to the provider are withdrawn, so a later run sends them."""
    Reminder.objects.filter(id__in=[i.reminder_id for i in items], status=Reminder.Status.PENDING).delete()
    for item in items:
        outcome.skipped[item.order_id] = Skip.PROVIDER_DOWN


def reminders_send(*, order_ids: Iterable[int], level: int, trigger: str, now: datetime.datetime, user=None,
                   run: DunningRun | None = None, configs: list[DunningConfig] | None = None,
                   batch_size: int | None = None) -> SendOutcome:
    """Send the reminder of `level` to each of `order_ids` that is due for it at `now`, exactly once.

    Orders that do not qualify at the moment of sending are skipped with a reason. Raises
    ProviderUnavailable after its outcome is recorded when the provider keeps failing."""
    if level not in (1, 2, 3):
        raise ValueError(f"reminders are sent at level 1, 2 or 3, not {level!r}")
    outcome = SendOutcome()
    configs = selectors.active_configs() if configs is None else configs
    resolver = TemplateResolver(level)
    batch_size = batch_size or settings.DUNNING_BATCH_SIZE
    record_every = 250  # outcomes are written back every 250 sends: few statements, small crash window
    connection = None  # opened at the first claimed reminder: a level with nothing due costs no connection
    consecutive_transient = 0
    try:
        for chunk in chunked(order_ids, batch_size):
            claimed = _retrying(lambda chunk=chunk: _claim(
                chunk, level=level, trigger=trigger, now=now, user=user, run=run, configs=configs,
                resolver=resolver, outcome=outcome))
            if claimed and connection is None:
                connection = get_connection()
                connection.open()
            for start in range(0, len(claimed), record_every):
                part = claimed[start:start + record_every]
                results = []
                for index, item in enumerate(part):
                    kind, mid, err = _send_one(item, connection)
                    results.append((item, kind, mid, err))
                    consecutive_transient = consecutive_transient + 1 if kind == TRANSIENT else 0
                    if consecutive_transient >= 5:
                        _retrying(lambda results=results: _record(
                            results, level=level, trigger=trigger, now=now, user=user, outcome=outcome))
                        _release_unsent(part[index + 1:] + claimed[start + record_every:], outcome)
                        raise ProviderUnavailable(err, outcome)
                _retrying(lambda results=results: _record(results, level=level, trigger=trigger, now=now, user=user,
                                                          outcome=outcome))
    finally:
        if connection is not None:
            with contextlib.suppress(Exception):  # closing a broken connection must not hide the real error
                connection.close()
    return outcome


# --- prepayment cancellation ---------------------------------------------------------------------

@dataclass
class CancellationOutcome:
    flagged: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))  # account -> order ids
    cancelled: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    notice_errors: list[str] = field(default_factory=list)


def prepayment_orders_handle(*, now: datetime.datetime, configs: list[DunningConfig], dry_run: bool = False,
                             batch_size: int = 1000) -> CancellationOutcome:
    """Flag or cancel (and release) open prepayment orders older than `cancel_after_days`, then send
    one notice per sales account to its team listing the orders newly handled now."""
    outcome = CancellationOutcome()
    actions = {(c.sales_account_id, c.payment_method_id): c.cancellation_action for c in configs}
    q = selectors.cancellation_q(now=now, configs=configs)
    if q is selectors.NOTHING:
        return outcome
    candidates = Order.objects.filter(q).order_by("id").values_list("id", "sales_account_id", "payment_method_id")
    if dry_run:
        for _order_id, account_id, method_id in candidates:
            action = actions[(account_id, method_id)]
            target = outcome.flagged if action == DunningConfig.CancellationAction.FLAG else outcome.cancelled
            target[account_id].append(_order_id)
        return outcome
    ids = list(candidates.values_list("id", flat=True))
    Action = DunningConfig.CancellationAction
    for chunk in chunked(ids, batch_size):
        with transaction.atomic():
            locked = list(Order.objects.filter(q, id__in=chunk).select_for_update(skip_locked=True)
                          .values_list("id", "sales_account_id", "payment_method_id"))
            by_action: dict[str, list[int]] = defaultdict(list)
            for order_id, account_id, method_id in locked:
                action = actions[(account_id, method_id)]
                by_action[action].append(order_id)
                (outcome.flagged if action == Action.FLAG else outcome.cancelled)[account_id].append(order_id)
            if by_action[Action.FLAG]:
                Order.objects.filter(id__in=by_action[Action.FLAG]).update(flagged_for_cancellation_at=now)
            if by_action[Action.CANCEL]:
                Order.objects.filter(id__in=by_action[Action.CANCEL]).update(cancelled_at=now)
            if by_action[Action.CANCEL_AND_RELEASE]:
                Order.objects.filter(id__in=by_action[Action.CANCEL_AND_RELEASE]).update(
                    cancelled_at=now, reservation_released_at=now)
            OrderEvent.objects.bulk_create([
                OrderEvent(order_id=order_id, action=f"auto_{action}", at=now, details={"rule": "cancel_after_days"})
                for action, order_ids in by_action.items() for order_id in order_ids])
    _send_team_notices(outcome, now=now)
    return outcome


def _send_team_notices(outcome: CancellationOutcome, *, now: datetime.datetime) -> None:
    from django.template.loader import render_to_string
    from django.utils import translation

    from accounts.models import SalesAccount

    account_ids = set(outcome.flagged) | set(outcome.cancelled)
    for account in SalesAccount.objects.filter(id__in=account_ids):
        if not account.team_email:
            outcome.notice_errors.append(f"{account.name}: no team e-mail address set, no notice sent")
            continue
        flagged = Order.objects.filter(id__in=outcome.flagged.get(account.id, [])).select_related("payment_method")
        cancelled = Order.objects.filter(id__in=outcome.cancelled.get(account.id, [])).select_related(
            "payment_method")
        with translation.override(account.language):
            flagged, cancelled = list(flagged), list(cancelled)
            context = {"account": account, "flagged": flagged, "cancelled": cancelled, "now": now,
                       "total": len(flagged) + len(cancelled)}
            subject = render_to_string("dunning/email/team_notice_subject.txt", context).strip()
            body = render_to_string("dunning/email/team_notice.txt", context)
        try:
            EmailMultiAlternatives(subject=" ".join(subject.split()), body=body, from_email=account.sender_email,
                                   to=[account.team_email]).send()
        except Exception as exc:
            logger.exception("team notice for %s failed", account.name)
            outcome.notice_errors.append(f"{account.name}: notice failed: {_error_text(exc)}")


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
    started = time.monotonic()
    run = DunningRun.objects.create(trigger=trigger, dry_run=dry_run, started_at=now, started_by=user)
    with _finishing(run, started):
        _execute(run, now=now, dry_run=dry_run, sales_account_id=sales_account_id)
    return run


@contextlib.contextmanager
def _finishing(run: DunningRun, started: float) -> Iterator[None]:
    """Marks `run` finished with its duration, also when the body raises (the error is kept)."""
    try:
        yield
    except BaseException as exc:
        run.error = "\n".join(filter(None, [run.error, f"Run aborted: {_error_text(exc)}"]))[:10000]
        raise
    finally:
        run.finished_at = timezone.now()
        run.duration_ms = int((time.monotonic() - started) * 1000)
        with contextlib.suppress(Exception):  # the database may be what failed
            run.save()


def _execute(run: DunningRun, *, now: datetime.datetime, dry_run: bool, sales_account_id: int | None) -> None:
    configs = selectors.active_configs(sales_account_id=sales_account_id)
    names = {c.sales_account_id: c.sales_account.name for c in configs}
    levels: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    errors: list[str] = []
    # Highest level first: a reminder sent in this run must not make the same order due for the
    # next level in the same run (possible when min_days_between_reminders is 0).
    for level in (3, 2, 1):
        level_configs = selectors.automatic_configs(level, configs)
        if not level_configs:
            continue
        due = selectors.orders_due(level, now=now, configs=level_configs, automatic=True)
        if dry_run:
            for account_id, count in Counter(due.values_list("sales_account_id", flat=True)).items():
                levels[names[account_id]][str(level)] = {"due": count}
            continue
        outcome = SendOutcome()
        provider_down = False
        try:
            outcome = reminders_send(order_ids=_due_ids(due), level=level,
                                     trigger=Reminder.Trigger.AUTOMATIC, now=now, run=run, configs=level_configs)
        except ProviderUnavailable as exc:
            outcome = exc.outcome
            provider_down = True
            errors.append(f"level {level}: e-mail provider unavailable, run stopped: {exc}")
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
            levels[names.get(account_id, str(account_id))][str(level)] = dict(counts)
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
        "levels": levels,
        "cancellation": {names.get(a, str(a)): {"flagged": len(cancellation.flagged.get(a, [])),
                                                "cancelled": len(cancellation.cancelled.get(a, []))}
                         for a in set(cancellation.flagged) | set(cancellation.cancelled)},
    }
    run.error = "\n".join(errors)[:10000]


# --- manual Notify -----------------------------------------------------------------------------

def orders_notify(*, order_ids: Iterable[int], level: int, user, now: datetime.datetime,
                  run: DunningRun | None = None) -> tuple[DunningRun, SendOutcome]:
    """Staff's Notify: send the `level` reminder to the given orders that still qualify."""
    started = time.monotonic()
    if run is None:
        run = DunningRun.objects.create(trigger=DunningRun.Trigger.MANUAL, started_at=now, started_by=user)
    outcome = SendOutcome()
    with _finishing(run, started):
        try:
            outcome = reminders_send(order_ids=order_ids, level=level, trigger=Reminder.Trigger.MANUAL, now=now,
                                     user=user, run=run)
        except ProviderUnavailable as exc:
            outcome = exc.outcome
            run.error = f"E-mail provider unavailable, sending stopped: {exc}"
        run.sent, run.failed, run.skipped = len(outcome.sent), len(outcome.failed), len(outcome.skipped)
        run.details = {**(run.details or {}), "level": level, "skipped": outcome.skip_counts,
                       "unknown": len(outcome.unknown), "failed_errors": sorted(set(outcome.failed.values()))[:20]}
    return run, outcome
