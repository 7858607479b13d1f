"""Writes of the payments app: importing bank statements, matching payments to orders (at import
and again at the start of every dunning run), and staff's assign / unassign / "not an order
payment" on the unmatched queue. The rules are in docs/rules/payments.md.

`statements_import` reads every file of a call once to validate it (a bad file refuses the whole
call: nothing from any file is written), then reads them again and writes everything in ONE
transaction, in batches of BATCH entries with a constant number of queries each (existing source
ids, the open orders named, one INSERT of payments, the payments of the orders touched, the
audit rows, the paid orders). A statement seen before (same SHA-256) or an entry seen before
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
from django.utils.translation import gettext, gettext_noop

from common.dates import local_midnight
from common.iterables import chunked
from orders.audit import order_events_log
from orders.models import OPEN, Order, OrderEvent
from orders.services import orders_mark_paid_by_bank, orders_reopen_unpaid
from webhooks.models import EventType
from webhooks.services import events_emit

from . import matching
from .models import UNMATCHED, BankStatement, Payment
from .parsing import Entry, Source, StatementError, sources_of

BATCH = 2000
Action = OrderEvent.Action


class ImportRefused(Exception):
    """The call wrote nothing; `str()` is the one line to show (file, entry where known, problem),
    `localized()` the same in the active language (the upload page)."""

    def __init__(self, message: str, *, localized: Callable[[], str] | None = None):
        super().__init__(message)
        self._localized = localized

    def localized(self) -> str:
        return self._localized() if self._localized else gettext(str(self))


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
    if isinstance(item, tuple):
        return item
    path = os.fspath(item)
    return os.path.basename(path) or path, lambda: open(path, "rb")  # noqa: SIM115


# --- import -------------------------------------------------------------------------------------

def statements_import(files: Sequence[FileArg], *, dry_run: bool = False, now: datetime.datetime,
                      user=None) -> ImportResult:
    """Import bank statement files (paths, or (name, opener) pairs whose opener returns a fresh
    binary file each call). Raises ImportRefused, with nothing written, when any file cannot be
    read or was already imported as another file for the same account and period."""
    if not files:
        raise ImportRefused(gettext_noop("no files given"))
    sources: list[Source] = []
    try:
        for item in files:
            name, opener = _opener(item)
            try:
                sources += sources_of(name, opener)
            except OSError as exc:
                raise StatementError(
                    name, gettext_noop("cannot be read (%(error)s)"), error=exc.strerror or exc) from None
        known = dict(BankStatement.objects.filter(sha256__in=[s.sha256 for s in sources])
                     .values_list("sha256", "entries"))
        fresh: list[Source] = []
        seen_sha: set[str] = set()
        for source in sources:
            if source.sha256 in known or source.sha256 in seen_sha:
                continue
            seen_sha.add(source.sha256)
            for _entry in _checked(source):
                pass  # reads, validates and fills source.header
            fresh.append(source)
        _check_periods(fresh)
    except StatementError as exc:
        raise ImportRefused(str(exc), localized=exc.localized) from None

    result = ImportResult(dry_run=dry_run)
    try:
        with transaction.atomic():
            for source in sources:
                if source not in fresh:
                    counted = known.get(source.sha256)
                    if counted is None:  # the same file twice in this call
                        counted = BankStatement.objects.filter(sha256=source.sha256).values_list(
                            "entries", flat=True).first() or 0
                    result.entries += counted
                    result.duplicates += counted
                    continue
                _import_source(source, result, now=now, user=user)
            if dry_run:
                transaction.set_rollback(True)
    except IntegrityError as exc:
        message = gettext_noop("another import of the same statements ran at the same time; nothing was written "
                               "(%(error)s)")
        name = exc.__class__.__name__
        raise ImportRefused(message % {"error": name}, localized=lambda: gettext(message) % {"error": name}) from None
    except StatementError as exc:  # a file changed between the two reads
        raise ImportRefused(str(exc), localized=exc.localized) from None
    return result


def _checked(source: Source) -> Iterable[Entry]:
    for entry in source.entries():
        if entry.credit and entry.booked or entry.is_return:
            if entry.amount <= 0:
                raise StatementError(source.name, gettext_noop("an amount of zero"), entry=entry.index)
            if not entry.currency.isalpha() or len(entry.currency) != 3:
                raise StatementError(source.name, gettext_noop("invalid currency %(text)r"), text=entry.currency,
                                     entry=entry.index)
        yield entry


def _check_periods(sources: list[Source]) -> None:
    """A different file for the same account and the same period as one imported before (or
    another of this call) is refused."""
    keys: dict[tuple, str] = {}
    for source in sources:
        h = source.header
        if not (h.account_iban and h.period_from and h.period_to):
            continue
        key = (h.account_iban, h.period_from, h.period_to)
        earlier = keys.get(key) or BankStatement.objects.filter(
            account_iban=h.account_iban, period_from=h.period_from, period_to=h.period_to
        ).values_list("file_name", flat=True).first()
        if earlier:
            raise StatementError(
                source.name, gettext_noop("a different statement for account %(iban)s, %(start)s to %(end)s, "
                                          "was already imported (%(earlier)s)"),
                iban=h.account_iban, start=h.period_from, end=h.period_to, earlier=earlier)
        keys[key] = source.name


def _import_source(source: Source, result: ImportResult, *, now: datetime.datetime, user) -> None:
    h = source.header
    statement = BankStatement.objects.create(
        file_name=source.name[:255], format=source.format, sha256=source.sha256, account_iban=h.account_iban,
        period_from=h.period_from, period_to=h.period_to, imported_at=now, imported_by=user)
    counts = ImportResult()
    for batch in chunked(_checked(source), BATCH):
        _import_batch(statement, batch, counts, now=now, user=user)
    for name in ("entries", "payments", "matched", "unmatched", "duplicates", "ignored"):
        setattr(statement, name, getattr(counts, name))
        setattr(result, name, getattr(result, name) + getattr(counts, name))
    result.returns += counts.returns
    result.statements.append(source.name)
    statement.save(update_fields=["entries", "payments", "matched", "unmatched", "duplicates", "ignored"])


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
    Payment.objects.bulk_create(rows, batch_size=1000)
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
            entries.append((accounts.pop(), _unmatched_data(p, [number for number, _ in hits])))
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
    due = {o.id: o.total - o.sales_account.payment_tolerance
           for o in Order.objects.filter(OPEN, id__in=ids).select_related("sales_account")
           .only("id", "total", "sales_account__payment_tolerance")}
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
    """Why staff's action on a payment was refused (shown as is)."""


def payment_assign(*, payment_id: int, order_id: int, user, now: datetime.datetime) -> Payment:
    """Assign an unmatched credit to an order (same currency, not cancelled); the order becomes
    paid when its payments now cover it."""
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment_id)
        order = Order.objects.select_for_update().get(pk=order_id)
        if payment.kind != Payment.Kind.CREDIT:
            raise PaymentActionError(gettext("A return or reversal is never assigned to an order."))
        if payment.order_id is not None:
            raise PaymentActionError(gettext("This payment is already assigned to an order."))
        if order.cancelled_at is not None:
            raise PaymentActionError(gettext("The order is cancelled."))
        if order.currency != payment.currency:
            raise PaymentActionError(gettext("The order is in %(order)s, the payment in %(payment)s.")
                                     % {"order": order.currency, "payment": payment.currency})
        payment.order, payment.matched_by, payment.matched_at = order, Payment.MatchedBy.MANUAL, now
        payment.dismissed_at, payment.dismissed_by = None, None
        payment.save(update_fields=["order", "matched_by", "matched_at", "dismissed_at", "dismissed_by"])
        order_events_log([(order.pk, _details(payment))], action=Action.PAYMENT_MATCHED, at=now, user=user)
        orders_settle([order.pk], now=now, user=user)
    return payment


def payment_unassign(*, payment_id: int, user, now: datetime.datetime) -> Payment:
    """Take a payment off its order (back to the unmatched queue, no longer matched
    automatically); the order is reopened when it was paid by bank and is no longer covered."""
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment_id)
        if payment.order_id is None:
            raise PaymentActionError(gettext("This payment is not assigned to an order."))
        order = Order.objects.select_for_update().select_related("sales_account").get(pk=payment.order_id)
        details = _details(payment)
        payment.order, payment.matched_by, payment.matched_at, payment.no_auto_match = None, "", None, True
        payment.save(update_fields=["order", "matched_by", "matched_at", "no_auto_match"])
        order_events_log([(order.pk, details)], action=Action.PAYMENT_UNASSIGNED, at=now, user=user)
        paid = order.payments.filter(kind=Payment.Kind.CREDIT).aggregate(s=Sum("amount"))["s"] or Decimal("0")
        if paid < order.total - order.sales_account.payment_tolerance:
            orders_reopen_unpaid(order_ids=[order.pk], details={"payment": payment.pk, "paid": str(paid)},
                                 user=user, now=now)
    return payment


def payment_dismiss(*, payment_id: int, user, now: datetime.datetime) -> Payment:
    """Mark an unmatched credit "not an order payment" (out of the queue; reversible)."""
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment_id)
        if payment.order_id is not None:
            raise PaymentActionError(gettext("This payment is assigned to an order; unassign it first."))
        payment.dismissed_at, payment.dismissed_by = now, user
        payment.save(update_fields=["dismissed_at", "dismissed_by"])
    return payment


def payment_undismiss(*, payment_id: int, user, now: datetime.datetime) -> Payment:
    """Put a payment marked "not an order payment" back into the unmatched queue."""
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment_id)
        payment.dismissed_at, payment.dismissed_by = None, None
        payment.save(update_fields=["dismissed_at", "dismissed_by"])
    return payment
