"""Writes of the payments app: importing bank statements, matching payments to orders (at import
and again at the start of every dunning run), and staff's assign / unassign / "not an order
payment" on the unmatched queue. The rules are in docs/rules/payments.md.

`statements_import` reads every file of a call once and writes everything in ONE transaction, in
batches of BATCH entries with a constant number of queries each (existing source ids, the open
orders named, the payments by COPY, the payments of the orders touched, the audit rows by COPY,
the paid orders); a bad file anywhere rolls the whole call back (nothing from any file is
written). A statement seen before (same SHA-256) or an entry seen before
(same `source_id`) adds nothing and is counted as a duplicate. A dry run does all of it and rolls
back, so its counts are exact.

An order becomes paid when the sum of its credit payments reaches `total - payment_tolerance`;
its `paid_at` is the local midnight of the booking day of the payment that got it there (written
by `orders.services.orders_mark_paid_by_bank`, with the audit row)."""

from __future__ import annotations

import datetime
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import BinaryIO

from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.db.models.functions import Upper
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from common.bulk import insert_rows
from common.dates import local_midnight
from common.iterables import chunked
from orders.audit import order_events_log
from orders.models import OPEN, Order, OrderEvent
from orders.services import orders_mark_paid_by_bank, orders_reopen_unpaid
from webhooks.models import EventType
from webhooks.services import events_emit

from . import matching
from .models import UNMATCHED, BankStatement, Payment, PaymentEvent
from .parsing import Entry, Source, StatementError, sources_of

BATCH = 2000
Action = OrderEvent.Action


class ImportRefused(Exception):
    """The call wrote nothing; `str()` is the one line to show (file, entry where known, problem), in
    the language active when it is shown (the problem is a StatementError or a lazy text)."""

    def __init__(self, problem, **params):
        self.problem, self.params = problem, params
        super().__init__(problem)

    def __str__(self) -> str:
        return str(self.problem) % self.params if self.params else str(self.problem)


@dataclass
class ImportResult:
    entries: int = 0
    payments: int = 0
    matched: int = 0
    unmatched: int = 0
    duplicates: int = 0
    ignored: int = 0
    returns: int = 0
    dry_run: bool = False
    statements: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"entries {self.entries}, payments {self.payments}, matched {self.matched}, "
                f"unmatched {self.unmatched}, duplicates {self.duplicates}, ignored {self.ignored}")


FileArg = str | os.PathLike | tuple[str, Callable[[], BinaryIO]]


def _opener(item: FileArg) -> tuple[str, Callable[[], BinaryIO]]:
    """The file's name (as shown and stored: control characters, which an uploaded name may carry,
    become "?") and how to open it."""
    if isinstance(item, tuple):
        name, opener = item
    else:
        path = os.fspath(item)
        name, opener = os.path.basename(path) or path, lambda: open(path, "rb")  # noqa: SIM115
    return "".join(c if c.isprintable() else "?" for c in name), opener


# --- import -------------------------------------------------------------------------------------

def statements_import(files: Sequence[FileArg], *, dry_run: bool = False, now: datetime.datetime,
                      user=None) -> ImportResult:
    """Import bank statement files (paths, or (name, opener) pairs whose opener returns a fresh
    binary file each call). Raises ImportRefused, with nothing written, when any file cannot be
    read or was already imported as another file for the same account and period."""
    if not files:
        raise ImportRefused(gettext_lazy("no files given"))
    sources: list[Source] = []
    try:
        for item in files:
            name, opener = _opener(item)
            try:
                sources += sources_of(name, opener)
            except OSError as exc:
                raise StatementError(name, gettext_lazy("cannot be read (%(error)s)"),
                                     error=exc.strerror or exc) from None
    except StatementError as exc:
        raise ImportRefused(exc) from None
    known = dict(BankStatement.objects.filter(sha256__in=[s.sha256 for s in sources])
                 .values_list("sha256", "entries"))

    result = ImportResult(dry_run=dry_run)
    seen_sha: set[str] = set()
    try:
        with transaction.atomic():
            for source in sources:
                if source.sha256 in known or source.sha256 in seen_sha:
                    counted = known.get(source.sha256)
                    if counted is None:  # the same file twice in this call
                        counted = BankStatement.objects.filter(sha256=source.sha256).values_list(
                            "entries", flat=True).first() or 0
                    result.entries += counted
                    result.duplicates += counted
                    continue
                seen_sha.add(source.sha256)
                _import_source(source, result, now=now, user=user)
            if dry_run:
                transaction.set_rollback(True)
    except IntegrityError as exc:
        raise ImportRefused(gettext_lazy("another import of the same statements ran at the same time; nothing was "
                                         "written (%(error)s)"), error=exc.__class__.__name__) from None
    except StatementError as exc:  # any file of the call: everything written so far is rolled back
        raise ImportRefused(exc) from None
    return result


def _checked(source: Source) -> Iterable[Entry]:
    for entry in source.entries():
        if entry.credit and entry.booked or entry.is_return:
            if entry.amount <= 0:
                raise StatementError(source.name, gettext_lazy("an amount of zero"), entry=entry.index)
            if not entry.currency.isalpha() or len(entry.currency) != 3:
                raise StatementError(source.name, gettext_lazy("invalid currency %(currency)s"), entry=entry.index,
                                     currency=repr(entry.currency))
        yield entry


def _check_period(source: Source, statement: BankStatement) -> None:
    """A different file for the same account and the same period as one imported before (or
    earlier in this call: it is in the same transaction) is refused."""
    h = source.header
    if not (h.account_iban and h.period_from and h.period_to):
        return
    earlier = (BankStatement.objects.filter(account_iban=h.account_iban, period_from=h.period_from,
                                            period_to=h.period_to)
               .exclude(pk=statement.pk).values_list("file_name", flat=True).first())
    if earlier:
        raise StatementError(source.name, gettext_lazy(
            "a different statement for account %(iban)s, %(start)s to %(end)s, was already imported (%(file)s)"),
            iban=h.account_iban, start=h.period_from, end=h.period_to, file=earlier)


def _import_source(source: Source, result: ImportResult, *, now: datetime.datetime, user) -> None:
    """Read the file once, writing batch by batch: the statement row is created when the first
    batch is read (a camt header precedes its entries; the MT940 library reads the whole file
    first), its period is checked and stored at the end (MT940: first to last booking date). A
    problem anywhere raises StatementError and the caller's transaction rolls everything back, so
    nothing of the call is written, as if the files had been validated first (they were, until
    2026-12: a second full read that cost a third of the import)."""
    statement: BankStatement | None = None
    counts = ImportResult()
    for batch in chunked(_checked(source), BATCH):
        statement = statement or _new_statement(source, now=now, user=user)
        _import_batch(statement, batch, counts, now=now, user=user)
    statement = statement or _new_statement(source, now=now, user=user)
    _check_period(source, statement)
    statement.account_iban = source.header.account_iban
    statement.period_from, statement.period_to = source.header.period_from, source.header.period_to
    for name in ("entries", "payments", "matched", "unmatched", "duplicates", "ignored"):
        setattr(statement, name, getattr(counts, name))
        setattr(result, name, getattr(result, name) + getattr(counts, name))
    result.returns += counts.returns
    result.statements.append(source.name)
    statement.save(update_fields=["account_iban", "period_from", "period_to", "entries", "payments", "matched",
                                  "unmatched", "duplicates", "ignored"])


def _new_statement(source: Source, *, now: datetime.datetime, user) -> BankStatement:
    # the period is stored once the whole file is read (and checked against earlier statements)
    return BankStatement.objects.create(file_name=source.name[:255], format=source.format, sha256=source.sha256,
                                        account_iban=source.header.account_iban, imported_at=now,
                                        imported_by=user)


def _import_batch(statement: BankStatement, batch: list[Entry], counts: ImportResult, *,
                  now: datetime.datetime, user) -> None:
    counts.entries += len(batch)
    keep: dict[str, Entry] = {}
    for entry in batch:
        if not entry.booked or not (entry.credit or entry.is_return):
            counts.ignored += 1
        elif entry.source_id in keep:
            counts.duplicates += 1
        else:
            keep[entry.source_id] = entry
    existing = set(Payment.objects.filter(source_id__in=list(keep)).values_list("source_id", flat=True))
    counts.duplicates += len(existing)
    new = [e for sid, e in keep.items() if sid not in existing]
    rows = [Payment(statement=statement, amount=e.amount, currency=e.currency, booked_on=e.booked_on,
                    reference=e.reference, end_to_end_id=e.end_to_end_id, counterparty_name=e.counterparty_name,
                    counterparty_iban=e.counterparty_iban, source_id=e.source_id,
                    kind=Payment.Kind.RETURN if e.is_return else Payment.Kind.CREDIT)
            for e in new]
    credits = [p for p in rows if p.kind == Payment.Kind.CREDIT]
    counts.payments += len(rows)  # returns included: matched + unmatched = the credits
    counts.returns += len(rows) - len(credits)
    orders = matching.open_orders_by_number(
        {c for p in credits for c in matching.candidates(p.reference)}, lock=True)
    for p in credits:
        order = matching.match(p.reference, p.currency, orders)
        if order is not None:
            p.order_id, p.matched_by, p.matched_at = order.id, Payment.MatchedBy.AUTO, now
    insert_rows(Payment, rows)  # COPY on PostgreSQL (common/bulk.py), with the pks the audit rows name
    matched = [p for p in credits if p.order_id]
    counts.matched += len(matched)
    counts.unmatched += len(credits) - len(matched)
    _after_match(matched, now=now, user=user)
    _emit_unmatched([p for p in credits if not p.order_id], now=now)


def _emit_unmatched(payments: list[Payment], *, now: datetime.datetime) -> None:
    """One `payment.unmatched` event per unmatched credit, to the sales account it can be given to:
    the account of the orders its texts name (in any state) when they all belong to ONE account. A
    bank payment has no account until it is matched, so a credit naming no order, or orders of
    several accounts, is not sent to anyone (it is never sent to an account it may not concern);
    staff see it in the unmatched queue. One query for the orders named, one `events_emit`."""
    if not payments:
        return
    wanted = {p.pk: matching.candidates(p.reference) for p in payments}
    named: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for chunk in chunked(sorted(set().union(*wanted.values())), matching.LOOKUP_CHUNK):
        for number, account_id, upper in (Order.objects.annotate(number_upper=Upper("number"))
                                          .filter(number_upper__in=chunk)
                                          .values_list("number", "sales_account_id", "number_upper")):
            named[upper].append((number, account_id))
    entries = []
    for p in payments:
        hits = sorted({hit for c in wanted[p.pk] for hit in named.get(c, ())})
        accounts = {account_id for _number, account_id in hits}
        if len(accounts) == 1:
            entries.append((accounts.pop(), _unmatched_data(p, [number for number, _account in hits])))
    events_emit(EventType.PAYMENT_UNMATCHED, entries, now=now)


def _after_match(matched: list[Payment], *, now: datetime.datetime, user) -> None:
    """Audit the new matches and mark the orders they complete as paid."""
    if not matched:
        return
    order_events_log(((p.order_id, _details(p)) for p in matched), action=Action.PAYMENT_MATCHED, at=now, user=user)
    orders_settle({p.order_id for p in matched}, now=now, user=user)


def _details(p: Payment) -> dict:
    return {"payment": p.pk, "amount": str(p.amount), "currency": p.currency, "booked_on": p.booked_on.isoformat(),
            "matched_by": p.matched_by, "source_id": p.source_id}


def orders_settle(order_ids: Iterable[int], *, now: datetime.datetime, user) -> list[int]:
    """Mark paid every open order of `order_ids` whose credit payments reach its total less the
    account's tolerance; paid_at = local midnight of the booking day of the payment that got the
    sum there. Returns the ids marked paid."""
    ids = list(order_ids)
    if not ids:
        return []
    due = {order_id: total - tolerance for order_id, total, tolerance in Order.objects.filter(OPEN, id__in=ids)
           .values_list("id", "total", "sales_account__payment_tolerance")}  # tuples: no model per row
    running: dict[int, Decimal] = defaultdict(Decimal)
    paid: dict[int, tuple[datetime.datetime, dict]] = {}
    for order_id, amount, booked_on, pk in (Payment.objects.filter(order_id__in=list(due), kind=Payment.Kind.CREDIT)
                                            .order_by("order_id", "booked_on", "id")
                                            .values_list("order_id", "amount", "booked_on", "id")):
        if order_id in paid:
            continue
        running[order_id] += amount
        if running[order_id] >= due[order_id]:
            paid[order_id] = (local_midnight(booked_on), {"payment": pk})
    for order_id, (_at, details) in paid.items():
        details["paid"] = str(running[order_id])
    return orders_mark_paid_by_bank(paid=paid, user=user, now=now)


# --- payments recorded through the API ------------------------------------------------------------

API_SOURCE = "api:{account}:{transaction}"
MAX_TRANSACTION_ID = 100


class OrderNotFound(LookupError):
    """The sales account has no order with that number (the API answers 404)."""


def api_source_id(*, sales_account_id: int, transaction_id: str) -> str:
    """The `source_id` of a payment the API recorded: unique per sales account and transaction id,
    so the database refuses a second one (the replay returns the first)."""
    return API_SOURCE.format(account=sales_account_id, transaction=transaction_id)


@dataclass
class ApiPayment:
    payment: Payment
    created: bool  # False: a replay of the same transaction id (nothing added)


def payment_record_api(*, sales_account_id: int, order_number: str, amount: Decimal, currency: str,
                       booked_on: datetime.date, transaction_id: str, now: datetime.datetime) -> ApiPayment:
    """Record a payment the shop or ERP reports for one of its orders (idempotent by transaction id).

    It is matched (matched_by=api) to that order when the order is open and in `currency`, and then
    counts toward paid exactly like a bank payment (`orders_settle`: paid when covered, with the
    PAID_BY_BANK audit row and the `order.paid` event). An order that is paid or cancelled keeps
    it unmatched for staff (never matched automatically: `no_auto_match`), with a
    `payment.unmatched` event. The order row is locked first, so two identical requests at once
    record one payment; the unique `source_id` is the last word. Raises OrderNotFound, or
    PaymentActionError for a currency that is not the order's."""
    source_id = api_source_id(sales_account_id=sales_account_id, transaction_id=transaction_id)
    first = Payment.objects.filter(source_id=source_id).first()
    if first is not None:
        return ApiPayment(first, created=False)
    with transaction.atomic():
        order = (Order.objects.select_for_update(of=("self",)).select_related("sales_account")
                 .filter(sales_account_id=sales_account_id, number=order_number).first())
        if order is None:
            raise OrderNotFound(order_number)
        first = Payment.objects.filter(source_id=source_id).first()  # a request that held the lock before us
        if first is not None:
            return ApiPayment(first, created=False)
        if order.currency != currency:
            raise PaymentActionError(f"The order is in {order.currency}, the payment in {currency}.")
        payment = Payment(amount=amount, currency=currency, booked_on=booked_on, reference=order.number,
                          end_to_end_id=transaction_id[:64], source_id=source_id)
        if order.is_open:
            payment.order, payment.matched_by, payment.matched_at = order, Payment.MatchedBy.API, now
        else:
            payment.no_auto_match = True
        try:
            with transaction.atomic():
                payment.save(force_insert=True)
        except IntegrityError:  # the same transaction id committed meanwhile (another order's lock)
            first = Payment.objects.filter(source_id=source_id).first()
            if first is None:
                raise
            return ApiPayment(first, created=False)
        if payment.order_id:
            _after_match([payment], now=now, user=None)
        else:
            events_emit(EventType.PAYMENT_UNMATCHED, [(sales_account_id, _unmatched_data(payment, [order.number]))],
                        now=now)
    return ApiPayment(payment, created=True)


def api_transaction_id(payment: Payment) -> str:
    """The transaction id an API payment was recorded with (its `source_id` without the prefix)."""
    return payment.source_id.split(":", 2)[2] if payment.source_id.startswith("api:") else ""


def _unmatched_data(p: Payment, numbers: list[str]) -> dict:
    return {"order_number": numbers[0], "order_numbers": numbers, "amount": str(p.amount), "currency": p.currency,
            "booked_on": p.booked_on.isoformat(), "reference": p.reference}


# --- matching again (the dunning run) -----------------------------------------------------------

def payments_rematch(*, now: datetime.datetime, user=None) -> int:
    """Match the payments still unmatched (not taken off an order by staff) against the open
    orders as they are now: an order imported after its payment is matched here. Returns how
    many were matched. Batches of BATCH, one transaction each."""
    total = 0
    ids = list(Payment.objects.filter(UNMATCHED, no_auto_match=False).order_by("id").values_list("id", flat=True))
    for chunk in chunked(ids, BATCH):
        with transaction.atomic():
            payments = list(Payment.objects.filter(UNMATCHED, id__in=chunk).select_for_update()
                            .only("id", "reference", "currency", "amount", "booked_on", "source_id"))
            orders = matching.open_orders_by_number(
                {c for p in payments for c in matching.candidates(p.reference)}, lock=True)
            matched = []
            for p in payments:
                order = matching.match(p.reference, p.currency, orders)
                if order is not None:
                    p.order_id, p.matched_by, p.matched_at = order.id, Payment.MatchedBy.AUTO, now
                    matched.append(p)
            if matched:
                Payment.objects.bulk_update(matched, ["order", "matched_by", "matched_at"])
                _after_match(matched, now=now, user=user)
            total += len(matched)
    return total


# --- staff --------------------------------------------------------------------------------------

class PaymentActionError(ValueError):
    """Why staff's action on a payment was refused (shown as is, in the active language)."""


def payment_events_log(payment: Payment, *, action: PaymentEvent.Action | str, at: datetime.datetime, user=None,
                       details: dict | None = None) -> PaymentEvent:
    """The one writer of `PaymentEvent` (staff's actions on a payment that is on no order)."""
    return PaymentEvent.objects.create(payment=payment, action=PaymentEvent.Action(action), user=user, at=at,
                                       details=details or {})


def _locked_credit(payment_id: int) -> Payment:
    return Payment.objects.select_for_update().get(pk=payment_id)


def payment_assign(*, payment_id: int, order_id: int, user, now: datetime.datetime) -> Payment:
    """Assign an unmatched credit to an order (same currency, not cancelled); the order becomes
    paid when its payments now cover it."""
    with transaction.atomic():
        payment = _locked_credit(payment_id)
        order = Order.objects.select_for_update().get(pk=order_id)
        if payment.kind != Payment.Kind.CREDIT:
            raise PaymentActionError(_("A return or reversal is never assigned to an order."))
        if payment.order_id is not None:
            raise PaymentActionError(_("This payment is already assigned to an order."))
        if payment.split_at is not None:
            raise PaymentActionError(_("This payment is split over several orders; undo the split first."))
        _check_order(order, payment)
        payment.order, payment.matched_by, payment.matched_at = order, Payment.MatchedBy.MANUAL, now
        payment.dismissed_at, payment.dismissed_by = None, None
        payment.save(update_fields=["order", "matched_by", "matched_at", "dismissed_at", "dismissed_by"])
        order_events_log([(order.pk, _details(payment))], action=Action.PAYMENT_MATCHED, at=now, user=user)
        orders_settle([order.pk], now=now, user=user)
    return payment


def _check_order(order: Order, payment: Payment) -> None:
    if order.cancelled_at is not None:
        raise PaymentActionError(_("Order %(number)s is cancelled.") % {"number": order.number})
    if order.currency != payment.currency:
        raise PaymentActionError(_("Order %(number)s is in %(order)s, the payment in %(payment)s.") % {
            "number": order.number, "order": order.currency, "payment": payment.currency})


def payment_unassign(*, payment_id: int, user, now: datetime.datetime) -> Payment:
    """Take a payment off its order (back to the unmatched queue, no longer matched
    automatically); the order is reopened when it was paid by bank and is no longer covered. A part
    of a split payment is not unassigned alone: `payment_unsplit` undoes the whole split."""
    with transaction.atomic():
        payment = _locked_credit(payment_id)
        if payment.parent_id is not None:
            raise PaymentActionError(_("This payment is part of a split; undo the split instead."))
        if payment.order_id is None:
            raise PaymentActionError(_("This payment is not assigned to an order."))
        order = Order.objects.select_for_update().get(pk=payment.order_id)
        details = _details(payment)
        payment.order, payment.matched_by, payment.matched_at, payment.no_auto_match = None, "", None, True
        payment.save(update_fields=["order", "matched_by", "matched_at", "no_auto_match"])
        order_events_log([(order.pk, details)], action=Action.PAYMENT_UNASSIGNED, at=now, user=user)
        _reopen_uncovered([order.pk], payment=payment, user=user, now=now)
    return payment


def _reopen_uncovered(order_ids: list[int], *, payment: Payment, user, now: datetime.datetime) -> list[int]:
    """Reopen the orders of `order_ids` (locked by the caller) that were paid by bank and whose credit
    payments no longer cover them (two queries for any number of orders)."""
    due = {o.id: o.total - o.sales_account.payment_tolerance
           for o in Order.objects.filter(id__in=order_ids).select_related("sales_account")
           .only("id", "total", "sales_account__payment_tolerance")}
    paid = dict(Payment.objects.filter(order_id__in=order_ids, kind=Payment.Kind.CREDIT).order_by()
                .values("order_id").annotate(s=Sum("amount")).values_list("order_id", "s"))
    short = [i for i in order_ids if paid.get(i, Decimal("0")) < due[i]]
    reopened: list[int] = []
    for order_id in short:  # the details name each order's own sum
        reopened += orders_reopen_unpaid(order_ids=[order_id], user=user, now=now, details={
            "payment": payment.pk, "paid": str(paid.get(order_id, Decimal("0")))})
    return reopened


def payment_dismiss(*, payment_id: int, user, now: datetime.datetime) -> Payment:
    """Mark an unmatched credit "not an order payment" (out of the queue; reversible, audited)."""
    with transaction.atomic():
        payment = _locked_credit(payment_id)
        if payment.order_id is not None:
            raise PaymentActionError(_("This payment is assigned to an order; unassign it first."))
        if payment.split_at is not None:
            raise PaymentActionError(_("This payment is split over several orders; undo the split first."))
        if payment.kind != Payment.Kind.CREDIT:
            raise PaymentActionError(_("A return or reversal is not in the queue."))
        if payment.dismissed_at is not None:
            raise PaymentActionError(_("This payment is already marked as not an order payment."))
        payment.dismissed_at, payment.dismissed_by = now, user
        payment.save(update_fields=["dismissed_at", "dismissed_by"])
        payment_events_log(payment, action=PaymentEvent.Action.DISMISSED, at=now, user=user)
    return payment


def payment_undismiss(*, payment_id: int, user, now: datetime.datetime) -> Payment:
    """Put a payment marked "not an order payment" back into the unmatched queue (audited, with who
    had marked it and when)."""
    with transaction.atomic():
        payment = _locked_credit(payment_id)
        if payment.dismissed_at is None:
            raise PaymentActionError(_("This payment is not marked as not an order payment."))
        details = {"dismissed_at": payment.dismissed_at.isoformat(), "dismissed_by": payment.dismissed_by_id}
        payment.dismissed_at, payment.dismissed_by = None, None
        payment.save(update_fields=["dismissed_at", "dismissed_by"])
        payment_events_log(payment, action=PaymentEvent.Action.UNDISMISSED, at=now, user=user, details=details)
    return payment


# --- splitting one credit over several orders of one customer --------------------------------------

MAX_PARTS = 10


def customer_key(order: Order) -> tuple:
    """Who an order's customer is, for "one customer": the sales account and the e-mail address
    (case ignored), or the name (case ignored) when the order has no address."""
    who = order.customer_email.strip().lower() or order.customer_name.strip().casefold()
    return order.sales_account_id, who


def payment_split(*, payment_id: int, parts: Sequence[tuple[int, Decimal]], user,
                  now: datetime.datetime) -> list[Payment]:
    """Split an unmatched credit over several orders of one customer: one part (a child payment,
    matched by hand, never re-matched) per (order id, amount) of `parts`, the amounts adding up to
    the payment's exactly. Each part is audited on its order, the split on the payment; orders the
    parts now cover are marked paid. The payment leaves the queue; `payment_unsplit` undoes it all.
    The payment row is locked first and then the orders (in id order), like every payment action."""
    with transaction.atomic():
        payment = _locked_credit(payment_id)
        if payment.kind != Payment.Kind.CREDIT or payment.parent_id is not None:
            raise PaymentActionError(_("Only a credit that is not a part of a split can be split."))
        if payment.order_id is not None:
            raise PaymentActionError(_("This payment is already assigned to an order."))
        if payment.split_at is not None:
            raise PaymentActionError(_("This payment is already split."))
        ids = [order_id for order_id, _amount in parts]
        if len(parts) < 2:
            raise PaymentActionError(_("A split needs at least two orders."))
        if len(parts) > MAX_PARTS:
            raise PaymentActionError(_("A split has at most %(n)d orders.") % {"n": MAX_PARTS})
        if len(set(ids)) != len(ids):
            raise PaymentActionError(_("Each order may appear only once in a split."))
        for _order_id, amount in parts:
            if amount <= 0 or amount != amount.quantize(Decimal("0.01")):
                raise PaymentActionError(_("Each part must be an amount above zero with at most two decimals."))
        total = sum((amount for _order_id, amount in parts), Decimal("0"))
        if total != payment.amount:
            raise PaymentActionError(_("The parts add up to %(parts)s %(currency)s, the payment is %(amount)s "
                                       "%(currency)s.") % {"parts": number_format(total, 2),
                                                           "amount": number_format(payment.amount, 2),
                                                           "currency": payment.currency})
        orders = {o.pk: o for o in Order.objects.select_for_update().filter(pk__in=ids).order_by("pk")}
        if len(orders) != len(ids):
            raise PaymentActionError(_("An order of the split does not exist."))
        for order in orders.values():
            _check_order(order, payment)
        if len({customer_key(o) for o in orders.values()}) != 1:
            raise PaymentActionError(_("A payment is split only over orders of one customer (same sales account "
                                       "and e-mail address, or name when there is none)."))
        payment.split_at, payment.split_by = now, user
        payment.dismissed_at, payment.dismissed_by = None, None
        payment.save(update_fields=["split_at", "split_by", "dismissed_at", "dismissed_by"])
        rows = [Payment(parent=payment, order_id=order_id, amount=amount, currency=payment.currency,
                        booked_on=payment.booked_on, reference=payment.reference, statement_id=payment.statement_id,
                        end_to_end_id=payment.end_to_end_id, counterparty_name=payment.counterparty_name,
                        counterparty_iban=payment.counterparty_iban, kind=Payment.Kind.CREDIT,
                        matched_by=Payment.MatchedBy.MANUAL, matched_at=now, no_auto_match=True,
                        source_id=f"split:{payment.pk}:{n}")
                for n, (order_id, amount) in enumerate(parts, start=1)]
        Payment.objects.bulk_create(rows)
        rows = list(payment.parts.order_by("id"))  # with their ids on every database
        order_events_log(((p.order_id, {**_details(p), "split_of": payment.pk, "part": n, "parts": len(rows),
                                        "payment_amount": str(payment.amount)})
                          for n, p in enumerate(rows, start=1)),
                         action=Action.PAYMENT_PART_ASSIGNED, at=now, user=user)
        payment_events_log(payment, action=PaymentEvent.Action.SPLIT, at=now, user=user, details={
            "parts": [{"order_id": p.order_id, "order": orders[p.order_id].number, "amount": str(p.amount),
                       "payment": p.pk} for p in rows]})
        orders_settle(ids, now=now, user=user)
    return rows


def payment_unsplit(*, payment_id: int, user, now: datetime.datetime) -> Payment:
    """Undo a split (`payment_id` is the split payment or one of its parts): the parts are deleted
    (their audit rows on the orders keep them), each order gets a PAYMENT_SPLIT_UNDONE row and is
    reopened when it was paid by bank and is no longer covered, and the payment is back in the
    unmatched queue (not matched automatically again). Returns the payment."""
    with transaction.atomic():
        payment = _locked_credit(payment_id)
        if payment.parent_id is not None:
            payment = _locked_credit(payment.parent_id)
        if payment.split_at is None:
            raise PaymentActionError(_("This payment is not split."))
        parts = list(payment.parts.select_for_update().order_by("id"))
        ids = sorted({p.order_id for p in parts})
        numbers = dict(Order.objects.select_for_update().filter(pk__in=ids).order_by("pk")
                       .values_list("pk", "number"))
        details = [{"order_id": p.order_id, "order": numbers.get(p.order_id, ""), "amount": str(p.amount),
                    "payment": p.pk} for p in parts]
        Payment.objects.filter(pk__in=[p.pk for p in parts]).delete()
        split_by, split_at = payment.split_by_id, payment.split_at
        payment.split_at, payment.split_by, payment.no_auto_match = None, None, True
        payment.save(update_fields=["split_at", "split_by", "no_auto_match"])
        order_events_log(((p.order_id, {**_details(p), "split_of": payment.pk}) for p in parts),
                         action=Action.PAYMENT_SPLIT_UNDONE, at=now, user=user)
        payment_events_log(payment, action=PaymentEvent.Action.SPLIT_UNDONE, at=now, user=user, details={
            "parts": details, "split_at": split_at.isoformat(), "split_by": split_by})
        _reopen_uncovered(ids, payment=payment, user=user, now=now)
    return payment
