"""The import service and command: counts, matching cases, re-import, dry run, refusals (nothing
written), and matching again at the start of the dunning run."""

import datetime
import io
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command

from common.dates import local_midnight
from orders.models import OrderEvent
from payments.models import BankStatement, Payment
from payments.selectors import order_payments_summary, overpaid_orders, unmatched_payments
from payments.services import (
    ImportRefused,
    payment_assign,
    payment_dismiss,
    payment_unassign,
    payments_rematch,
    statements_import,
)
from tests.factories import OrderFactory, SalesAccountFactory

FIXTURES = Path(__file__).parent / "fixtures"
SPK = FIXTURES / "camt053_sparkasse_001_02.xml"
DB = FIXTURES / "camt053_deutsche_bank_001_08.xml"
CBK = FIXTURES / "camt053_commerzbank_001_04.xml"


@pytest.fixture
def orders(account, invoice):
    def make(number, total="49.90", **kw):
        return OrderFactory(sales_account=kw.pop("sales_account", account), payment_method=invoice, number=number,
                            total=Decimal(total), **kw)
    return make


def run(*paths, now, dry_run=False):
    return statements_import([str(p) for p in paths], now=now, dry_run=dry_run)


def test_exact_partial_return_and_counts(orders, now):
    exact, partial, returned = orders("A100001"), orders("A100002"), orders("A100003")
    result = run(SPK, now=now)
    assert result.line() == "entries 4, payments 3, matched 2, unmatched 0, duplicates 0, ignored 1"
    exact.refresh_from_db(), partial.refresh_from_db(), returned.refresh_from_db()
    assert exact.paid_at == local_midnight(datetime.date(2026, 11, 23))
    assert exact.outstanding == 0
    assert partial.paid_at is None and partial.outstanding == Decimal("29.90")  # partial: stays open
    assert returned.paid_at is None and not returned.payments.exists()  # a return is never matched
    assert Payment.objects.get(kind=Payment.Kind.RETURN).order is None
    actions = list(exact.events.values_list("action", flat=True))
    assert set(actions) == {OrderEvent.Action.PAYMENT_MATCHED, OrderEvent.Action.PAID_BY_BANK}
    statement = BankStatement.objects.get()
    assert (statement.entries, statement.matched, statement.account_iban) == (4, 2, "DE89370400440532013000")


def test_reimport_adds_nothing(orders, now, tmp_path):
    orders("A100001")
    run(SPK, now=now)
    assert run(SPK, now=now).line() == "entries 4, payments 0, matched 0, unmatched 0, duplicates 4, ignored 0"
    # the same entries under another file (other bytes, same bank references): duplicates by source_id
    copy = tmp_path / "copy.xml"
    copy.write_bytes(SPK.read_bytes().replace(b"SPK-20261124-001", b"SPK-20261124-002")
                     .replace(b"<FrDtTm>2026-11-23", b"<FrDtTm>2026-11-22"))  # a two-day statement
    assert run(copy, now=now).line() == "entries 4, payments 0, matched 0, unmatched 0, duplicates 3, ignored 1"
    assert Payment.objects.count() == 3


def test_overpayment_and_tolerance(orders, now):
    over = orders("A100004", total="90.00")
    account = over.sales_account
    account.payment_tolerance = Decimal("1.00")
    account.save()
    short = orders("A100005", total="30.90")  # 30.00 paid, within the tolerance of 1.00
    result = run(DB, now=now)
    assert (result.matched, result.unmatched, result.ignored) == (2, 1, 1)
    over.refresh_from_db(), short.refresh_from_db()
    assert over.paid_at is not None and short.paid_at is not None
    assert [o.pk for o in overpaid_orders()] == [over.pk]
    assert overpaid_orders()[0].paid_amount == Decimal("99.00")


def test_number_inside_a_longer_token_is_no_match(orders, now):
    order = orders("A100006")
    run(DB, now=now)  # "Auftrag XA100006"
    assert not order.payments.exists()
    assert Payment.objects.get(reference__contains="XA100006").order is None


def test_ambiguous_two_orders_same_number(orders, now):
    orders("A100001")
    orders("A100001", sales_account=SalesAccountFactory(name="eBay"))
    run(SPK, now=now)
    payment = Payment.objects.get(reference__contains="A100001")
    assert payment.order is None
    assert payment in unmatched_payments()


def test_two_orders_in_one_transfer_stays_unmatched(orders, now):
    first, second = orders("A100009", total="5.00"), orders("A100010", total="5.00")
    run(CBK, now=now)  # "A100009/A100010" in one transfer of 10.00
    payment = Payment.objects.get(reference__contains="A100009")
    assert payment.order is None
    from payments.selectors import payment_suggestions
    assert {o.pk for o in payment_suggestions(payment)} >= {first.pk, second.pk}


def test_case_insensitive_and_currency(orders, now):
    lower = orders("A100008")  # "Best.Nr. a100008"
    usd_text = orders("A100011")  # a USD payment for a EUR order
    run(CBK, now=now)
    assert lower.payments.count() == 1
    assert not usd_text.payments.exists()


def test_order_imported_after_the_payment_matches_at_the_next_run(orders, now):
    run(SPK, now=now)
    order = orders("A100001")
    assert payments_rematch(now=now) == 1
    order.refresh_from_db()
    assert order.paid_at is not None


def test_the_dunning_run_matches_first(orders, now, config):
    from dunning.services import dunning_run_execute
    run(SPK, now=now)
    order = orders("A100001")
    dunning_run_execute(now=now)
    order.refresh_from_db()
    assert order.paid_at is not None


def test_return_of_an_earlier_credit(orders, now):
    order = orders("A100001")
    run(SPK, now=now)
    run(DB, now=now)  # "Rueckgabe A100001": stored, never matched; the order stays paid (staff decide)
    ret = Payment.objects.get(kind=Payment.Kind.RETURN, reference__contains="A100001")
    assert ret.order is None and ret not in unmatched_payments()
    order.refresh_from_db()
    assert order.paid_at is not None


def test_staff_assign_unassign_dismiss(orders, now, backoffice_user):
    order = orders("A100002", total="20.00")
    order.number = "Z1"
    order.save()
    run(SPK, now=now)
    payment = Payment.objects.get(reference__contains="A100002")
    assert payment.order is None
    payment_assign(payment_id=payment.pk, order_id=order.pk, user=backoffice_user, now=now)
    order.refresh_from_db()
    assert order.paid_at is not None
    assert order_payments_summary(order)["outstanding"] == 0
    payment_unassign(payment_id=payment.pk, user=backoffice_user, now=now)
    order.refresh_from_db()
    assert order.paid_at is None  # reopened: no longer covered
    assert order.events.filter(action=OrderEvent.Action.REOPENED_BY_UNASSIGN).exists()
    assert payments_rematch(now=now) == 0  # taken off by staff: not matched again automatically
    payment_dismiss(payment_id=payment.pk, user=backoffice_user, now=now)
    assert payment not in unmatched_payments()


def test_dry_run_writes_nothing(orders, now):
    orders("A100001")
    result = run(SPK, now=now, dry_run=True)
    assert result.matched == 1
    assert not Payment.objects.exists() and not BankStatement.objects.exists()


def test_a_bad_file_refuses_the_whole_call(orders, now, tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_bytes(DB.read_bytes().replace(b">99.00<", b">99,00<"))
    with pytest.raises(ImportRefused, match=r"^bad.xml: entry 1: invalid amount"):
        run(SPK, bad, now=now)
    assert not Payment.objects.exists() and not BankStatement.objects.exists()


def test_same_account_and_period_from_another_file_is_refused(db, now, tmp_path):
    run(SPK, now=now)
    other = tmp_path / "other.xml"
    other.write_bytes(SPK.read_bytes().replace(b"2026112300003", b"2026112300009"))
    with pytest.raises(ImportRefused, match="already imported"):
        run(other, now=now)


def test_command_prints_one_line(orders, now, capsys, tmp_path):
    orders("A100001")
    call_command("import_statement", str(SPK), str(FIXTURES / "mt940_deutsche_bank.mt940"))
    assert capsys.readouterr().out.strip() == (
        "entries 7, payments 5, matched 1, unmatched 3, duplicates 0, ignored 2")  # payments: returns too


def test_command_bad_file_exits_1(db, now, capsys, tmp_path):
    bad = tmp_path / "broken.sta"
    bad.write_bytes((FIXTURES / "mt940_sparkasse.sta").read_bytes().replace(b":61:2611231123DR", b":61:XX"))
    with pytest.raises(SystemExit) as exit_:
        call_command("import_statement", str(SPK), str(bad))
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["broken.sta: entry 2: broken :61: line ':61:XX12,50N805NONREF'"]
    assert not Payment.objects.exists()


def test_command_missing_file(capsys, db):
    with pytest.raises(SystemExit):
        call_command("import_statement", "/nonexistent/x.xml")
    assert capsys.readouterr().err.startswith("x.xml: cannot be read")


def test_upload_objects_are_read_twice(orders, now):
    data = SPK.read_bytes()
    result = statements_import([("upload.xml", lambda: io.BytesIO(data))], now=now)
    assert result.entries == 4
