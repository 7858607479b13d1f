"""The import costs a constant number of queries per batch, whatever the batch holds (complete,
partial and unmatched credits), and writes the same rows through COPY (PostgreSQL) as through
bulk_create (SQLite): payments with their pks, one PAYMENT_MATCHED row per matched payment, one
PAID_BY_BANK row per paid order."""

import io
from decimal import Decimal

import pytest
from django.db import connection

from orders.models import OrderEvent
from payments import services
from payments.models import Payment
from tests.factories import OrderFactory

BATCH = 60  # above common.bulk.COPY_MIN_ROWS: PostgreSQL takes the COPY path


def camt(prefix: str, n: int) -> bytes:
    """n credits: every 10th names no order, every 20th (offset 1) pays 20.00 of 49.90."""
    ns = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"
    entries = []
    for i in range(n):
        text = f"Kunde {i} Zahlung" if i % 10 == 0 else f"Bestellung {prefix}{i:05d} vielen Dank"
        amount = "20.00" if i % 20 == 1 else "49.90"
        entries.append(f'<Ntry><Amt Ccy="EUR">{amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>'
                       f"<BookgDt><Dt>2026-11-24</Dt></BookgDt><AcctSvcrRef>{prefix}-{i}</AcctSvcrRef><NtryDtls>"
                       f"<TxDtls><RmtInf><Ustrd>{text}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>")
    return (f'<?xml version="1.0" encoding="UTF-8"?><Document xmlns="{ns}"><BkToCstmrStmt><Stmt><Id>{prefix}</Id>'
            f"<Acct><Id><IBAN>DE89370400440532013000</IBAN></Id></Acct>{''.join(entries)}</Stmt></BkToCstmrStmt>"
            "</Document>").encode()


def run(prefix: str, batches: int, account, invoice, now) -> tuple[int, services.ImportResult]:
    n = batches * BATCH
    for i in range(n):
        OrderFactory(sales_account=account, payment_method=invoice, number=f"{prefix}{i:05d}",
                     total=Decimal("49.90"))
    data = camt(prefix, n)
    queries = []

    def count(execute, sql, params, many, context):
        queries.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        result = services.statements_import([(f"{prefix}.xml", lambda: io.BytesIO(data))], now=now)
    return len(queries), result


@pytest.mark.django_db
def test_queries_per_batch_are_constant(monkeypatch, account, invoice, now):
    monkeypatch.setattr(services, "BATCH", BATCH)
    counts = {}
    for prefix, batches in (("P", 1), ("Q", 2), ("R", 4)):
        counts[batches], result = run(prefix, batches, account, invoice, now)
        n = batches * BATCH
        assert result.line() == (f"entries {n}, payments {n}, matched {n - n // 10}, unmatched {n // 10}, "
                                 "duplicates 0, ignored 0")
    per_batch = counts[2] - counts[1]
    assert counts[4] - counts[2] == 2 * per_batch  # every batch costs the same
    assert per_batch <= 12, per_batch
    # what the batches wrote, row by row
    matched = Payment.objects.filter(order__isnull=False)
    assert matched.count() == 7 * BATCH * 9 // 10
    assert OrderEvent.objects.filter(action=OrderEvent.Action.PAYMENT_MATCHED).count() == matched.count()
    paid = OrderEvent.objects.filter(action=OrderEvent.Action.PAID_BY_BANK)
    assert paid.count() == matched.filter(amount=Decimal("49.90")).count()
    event = OrderEvent.objects.filter(action=OrderEvent.Action.PAYMENT_MATCHED).order_by("id").first()
    payment = Payment.objects.get(pk=event.details["payment"])  # the audit row names the stored payment
    assert payment.order_id == event.order_id and event.details["amount"] == str(payment.amount)
    partial = Payment.objects.get(source_id__endswith=":P-1")
    assert partial.order.paid_at is None and partial.order.outstanding == Decimal("29.90")
