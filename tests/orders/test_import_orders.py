"""`manage.py import_orders FILE.csv`: validation of every row before any write, upsert by
(sales account, number) that leaves the dunning state alone, delimiter/BOM sniffing."""

import datetime
import os
import subprocess
import sys
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from orders.importing import COLUMNS
from orders.models import Order, OrderEvent
from tests.factories import OrderFactory, SalesAccountFactory, berlin

UTC = datetime.UTC

GOOD = {
    "number": "1001", "sales_account": "Webshop", "payment_method": "invoice", "customer_name": "Erika Mustermann",
    "customer_email": "erika@example.com", "language": "", "total": "49.90", "currency": "EUR",
    "ordered_at": "2026-11-05T14:30:00", "paid_at": "", "cancelled_at": "",
}


@pytest.fixture
def shop(account, invoice, prepayment):
    """Webshop and eBay, invoice and prepayment."""
    return {"Webshop": account, "eBay": SalesAccountFactory(name="eBay", channel="ebay")}


def csv_text(rows: list[dict], *, delimiter: str = ",", columns=COLUMNS) -> str:
    lines = [delimiter.join(columns)]
    lines += [delimiter.join(row.get(c, "") for c in columns) for row in rows]
    return "\n".join(lines) + "\n"


def write(tmp_path: Path, text: str, *, name: str = "orders.csv", bom: bool = False, encoding="utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode(encoding))
    return path


def row(**changes) -> dict:
    return {**GOOD, **changes}


def run(path: Path, *args: str) -> str:
    out = StringIO()
    call_command("import_orders", str(path), *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def run_failing(path: Path | str, *args: str) -> tuple[list[str], CommandError]:
    err = StringIO()
    with pytest.raises(CommandError) as excinfo:
        call_command("import_orders", str(path), *args, stdout=StringIO(), stderr=err)
    assert excinfo.value.returncode == 1
    return err.getvalue().splitlines(), excinfo.value


# --- good files -----------------------------------------------------------------------------------

def test_good_file_is_imported(shop, tmp_path):
    path = write(tmp_path, csv_text([
        row(),
        row(number="1002", payment_method="prepayment", customer_email="", language="en", total="0",
            currency="chf", ordered_at="2026-07-01", paid_at="2026-07-02T08:00:00+02:00"),
        row(number="1001", sales_account="eBay", total="1234567.05", currency="USD",
            ordered_at="2026-11-05T10:00:00Z", cancelled_at="2026-11-06"),
    ]))
    out = run(path)
    assert "created 3, updated 0" in out
    web = Order.objects.get(sales_account__name="Webshop", number="1001")
    assert web.customer_name == "Erika Mustermann"
    assert web.customer_email == "erika@example.com"
    assert web.language == ""
    assert web.total == Decimal("49.90")
    assert web.currency == "EUR"
    assert web.payment_method.code == "invoice"
    assert web.ordered_at == berlin(2026, 11, 5, 14, 30)  # naive: Europe/Berlin (CET, +01:00)
    assert web.ordered_at == datetime.datetime(2026, 11, 5, 13, 30, tzinfo=UTC)
    assert web.paid_at is None and web.cancelled_at is None
    assert web.reminders_sent == 0

    pre = Order.objects.get(number="1002")
    assert pre.customer_email == "" and pre.language == "en" and pre.total == Decimal("0")
    assert pre.currency == "CHF"
    assert pre.ordered_at == datetime.datetime(2026, 6, 30, 22, 0, tzinfo=UTC)  # a date: Berlin midnight (CEST)
    assert pre.paid_at == datetime.datetime(2026, 7, 2, 6, 0, tzinfo=UTC)

    ebay = Order.objects.get(sales_account__name="eBay", number="1001")  # same number, other account
    assert ebay.total == Decimal("1234567.05")
    assert ebay.ordered_at == datetime.datetime(2026, 11, 5, 10, 0, tzinfo=UTC)
    assert ebay.cancelled_at == berlin(2026, 11, 6)
    assert set(OrderEvent.objects.values_list("action", flat=True)) == {"imported"}
    assert OrderEvent.objects.count() == 3


def test_naive_times_follow_settings_time_zone(shop, tmp_path, settings):
    settings.TIME_ZONE = "America/New_York"
    run(write(tmp_path, csv_text([row(ordered_at="2026-11-05T14:30:00")])))
    assert Order.objects.get().ordered_at == datetime.datetime(2026, 11, 5, 19, 30, tzinfo=UTC)


def test_semicolon_bom_crlf_and_quotes(shop, tmp_path):
    text = csv_text([row(customer_name='"Müller; Söhne ""GmbH"""'), row(number="1002")], delimiter=";")
    path = write(tmp_path, text.replace("\n", "\r\n"), bom=True)
    assert "created 2, updated 0" in run(path)
    assert Order.objects.get(number="1001").customer_name == 'Müller; Söhne "GmbH"'


def test_header_in_any_order_and_case_blank_lines_skipped(shop, tmp_path):
    columns = list(reversed(COLUMNS))
    text = csv_text([row()], columns=columns)
    text = text.replace("customer_email", " Customer_Email ") + "\n,,,,,,,,,,\n"
    assert "created 1, updated 0" in run(write(tmp_path, text))


def test_upsert_updates_paid_at_and_keeps_dunning_state(shop, tmp_path, prepayment):
    reminded = OrderFactory(sales_account=shop["Webshop"], number="1001", total=Decimal("49.90"),
                            customer_name="Erika Mustermann", customer_email="erika@example.com",
                            ordered_at=berlin(2026, 11, 5, 14, 30), reminders_sent=2,
                            last_reminder_at=berlin(2026, 11, 20, 6), dunning_blocked=True,
                            dunning_block_reason="Ratenzahlung", flagged_for_cancellation_at=berlin(2026, 11, 21, 6))
    already_paid = OrderFactory(sales_account=shop["Webshop"], number="1002", payment_method=prepayment,
                                paid_at=berlin(2026, 11, 10, 9))
    untouched = OrderFactory(sales_account=shop["Webshop"], number="1003", total=Decimal("10.00"))
    path = write(tmp_path, csv_text([
        row(paid_at="2026-11-25T09:15:00"),
        row(number="1002", payment_method="prepayment", customer_name=already_paid.customer_name,
            customer_email=already_paid.customer_email, total="49.90", ordered_at="2026-10-01T12:00:00",
            paid_at=""),  # an export from before the payment: does not clear paid_at
        row(number="1004"),
    ]))
    out = run(path)
    assert "created 1, updated 1 (1 unchanged)" in out
    reminded.refresh_from_db()
    assert reminded.paid_at == berlin(2026, 11, 25, 9, 15)
    assert reminded.reminders_sent == 2
    assert reminded.last_reminder_at == berlin(2026, 11, 20, 6)
    assert reminded.dunning_blocked and reminded.dunning_block_reason == "Ratenzahlung"
    assert reminded.flagged_for_cancellation_at == berlin(2026, 11, 21, 6)
    already_paid.refresh_from_db()
    assert already_paid.paid_at == berlin(2026, 11, 10, 9)
    untouched.refresh_from_db()
    assert untouched.total == Decimal("10.00")
    event = OrderEvent.objects.get(order=reminded)
    assert event.action == "import_updated"
    assert event.details["fields"] == ["paid_at"]
    assert not OrderEvent.objects.filter(order=already_paid).exists()

    # the same file again: nothing changes
    assert "created 0, updated 0 (3 unchanged)" in run(path)


def test_upsert_overwrites_the_order_data(shop, tmp_path):
    OrderFactory(sales_account=shop["Webshop"], number="1001", customer_email="old@example.com")
    run(write(tmp_path, csv_text([row(customer_email="", language="en", total="12.00", currency="USD")])))
    order = Order.objects.get()
    assert (order.customer_email, order.language, order.total, order.currency) == ("", "en", Decimal("12.00"), "USD")


def test_dry_run_writes_nothing(shop, tmp_path):
    out = run(write(tmp_path, csv_text([row(), row(number="1002")])), "--dry-run")
    assert "would have created 2, updated 0" in out
    assert not Order.objects.exists()


def test_no_query_per_row(shop, tmp_path, django_assert_max_num_queries):
    # Batches, not rows: SQLite's Django backend caps a statement at 999 parameters (about 45 orders or
    # 140 events an INSERT), PostgreSQL takes 1000 rows a statement.
    rows = [row(number=str(5000 + i)) for i in range(600)]
    path = write(tmp_path, csv_text(rows))
    with django_assert_max_num_queries(10 + 600 // 30):
        run(path)
    rows = [row(number=str(5000 + i), paid_at="2026-11-25") for i in range(600)]
    with django_assert_max_num_queries(10 + 600 // 30):
        assert "created 0, updated 600" in run(write(tmp_path, csv_text(rows)))
    assert Order.objects.filter(paid_at__isnull=False).count() == 600


# --- bad files: one line per problem, exit 1, nothing written -------------------------------------

@pytest.mark.parametrize(("changes", "expected"), [
    ({"sales_account": "Ebay"}, 'row 3, column sales_account: "Ebay" is not a sales account (known: Webshop, eBay)'),
    ({"payment_method": "bitcoin"}, 'row 3, column payment_method: "bitcoin" is not a payment method code'),
    ({"ordered_at": "05.11.26"}, 'row 3, column ordered_at: "05.11.26" has a two-digit year: write the year in '
                                 'full (05.11.2026 or 2026-11-05)'),
    ({"ordered_at": "31.02.2026"}, 'row 3, column ordered_at: "31.02.2026" is not a date like 2026-11-05 or '
                                   '05.11.2026, or a date-time like 2026-11-05T14:30:00+01:00 or 05.11.2026 14:30'),
    ({"ordered_at": "2026-02-30"}, 'row 3, column ordered_at: "2026-02-30" is not a date like 2026-11-05'),
    ({"paid_at": "yesterday"}, 'row 3, column paid_at: "yesterday" is not a date like 2026-11-05'),
    ({"cancelled_at": "2026-13-01"}, 'row 3, column cancelled_at: "2026-13-01" is not a date like 2026-11-05'),
    ({"total": "-3.00"}, 'row 3, column total: "-3.00" is negative'),
    ({"total": '"12,505"'}, 'row 3, column total: "12,505" is not an amount like 12.50'),
    ({"total": "1.234"}, 'row 3, column total: "1.234" is ambiguous: a dot with three digits after it could be a '
                         'thousands separator; write 1234.00 (or 1.234,00 as German Excel does)'),
    ({"total": "1.2345"}, 'row 3, column total: "1.2345" has more than 2 decimals'),
    ({"total": '"1.249,90 €"'}, 'row 3, column total: "1.249,90 €" contains a currency sign: write only the number'),
    ({"total": "abc"}, 'row 3, column total: "abc" is not an amount like 12.50'),
    ({"total": "1e3"}, 'row 3, column total: "1e3" is not an amount like 12.50'),
    ({"total": "12345678901.00"}, 'row 3, column total: "12345678901.00" is not an amount'),
    ({"currency": "EURO"}, 'row 3, column currency: "EURO" is not an ISO 4217 currency code'),
    ({"currency": "XYZ"}, 'row 3, column currency: "XYZ" is not an ISO 4217 currency code'),
    ({"customer_email": "erika@"}, 'row 3, column customer_email: "erika@" is not a valid e-mail address'),
    ({"language": "fr"}, 'row 3, column language: "fr" is not a language'),
    ({"customer_name": ""}, "row 3, column customer_name: empty (required)"),
    ({"number": "  "}, "row 3, column number: empty (required)"),
    ({"ordered_at": ""}, "row 3, column ordered_at: empty (required)"),
    ({"currency": ""}, "row 3, column currency: empty (required)"),
    ({"number": "1" * 65}, "row 3, column number: "),
    ({"number": "1001"}, 'row 3, column number: "1001" appears more than once for sales account "Webshop" '
                         "(first in row 2)"),
])
def test_bad_row_is_reported_and_nothing_imported(shop, tmp_path, changes, expected):
    path = write(tmp_path, csv_text([row(), row(**{"number": "1002", **changes}), row(number="1003")]))
    lines, error = run_failing(path)
    assert len(lines) == 1, lines
    assert lines[0].startswith(expected), lines
    assert "1 problem in" in str(error) and "nothing imported" in str(error)
    assert not Order.objects.exists()
    assert not OrderEvent.objects.exists()


def test_every_problem_is_reported(shop, tmp_path):
    OrderFactory(sales_account=shop["Webshop"], number="1001", total=Decimal("1.00"))
    path = write(tmp_path, csv_text([
        row(total="99.00"), row(number="1002", total="-1", currency="EURO"), row(number="1003"),
        row(number="1004", customer_email="nope"),
    ]))
    lines, error = run_failing(path)
    assert lines == [
        'row 3, column total: "-1" is negative',
        'row 3, column currency: "EURO" is not an ISO 4217 currency code',
        'row 5, column customer_email: "nope" is not a valid e-mail address',
    ]
    assert "3 problems" in str(error)
    assert Order.objects.get().total == Decimal("1.00")  # the good rows were not written either


@pytest.mark.parametrize(("columns", "expected"), [
    ([c for c in COLUMNS if c != "total"], ["row 1, column total: missing column"]),
    ([*COLUMNS, "note"], ["row 1, column note: unexpected column"]),
    ([*COLUMNS, "total"], ["row 1, column total: the column appears twice"]),
])
def test_bad_header(shop, tmp_path, columns, expected):
    lines, _error = run_failing(write(tmp_path, csv_text([row()], columns=columns)))
    assert [line.split(" (")[0] for line in lines] == expected
    assert not Order.objects.exists()


def test_wrong_number_of_fields(shop, tmp_path):
    text = csv_text([row()]) + "1002,Webshop,invoice\n"
    lines, _error = run_failing(write(tmp_path, text))
    assert lines == ["row 3: 3 fields, the header has 11"]


def test_missing_file(db, tmp_path):
    lines, error = run_failing(tmp_path / "nope.csv")
    assert lines == []
    assert str(error) == f"{tmp_path / 'nope.csv'}: no such file"


def test_not_utf8(shop, tmp_path):
    path = write(tmp_path, csv_text([row(customer_name="Jürgen Müller")]), encoding="cp1252")
    _lines, error = run_failing(path)
    assert "not UTF-8" in str(error) and "\n" not in str(error)
    assert not Order.objects.exists()


def test_empty_file(db, tmp_path):
    _lines, error = run_failing(write(tmp_path, ""))
    assert "empty" in str(error)


@pytest.mark.parametrize("text", [",,,,\n", ";;;\n\n\n"])
def test_a_file_of_empty_cells_says_which_header_it_expects(db, tmp_path, text):
    _lines, error = run_failing(write(tmp_path, text))
    assert str(error).endswith("the header cannot be read (no line with column names; expected "
                               "number,sales_account,payment_method,customer_name,customer_email,language,total,"
                               "currency,ordered_at,paid_at,cancelled_at)")


def test_command_line_exit_code_and_no_traceback(tmp_path):
    env = {**os.environ, "DJANGO_DEBUG": "1", "DATABASE_URL": "sqlite://:memory:"}
    proc = subprocess.run([sys.executable, "manage.py", "import_orders", str(tmp_path / "missing.csv")],
                          cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"CommandError: {tmp_path / 'missing.csv'}: no such file"
    assert "Traceback" not in proc.stderr


def test_malformed_csv(shop, tmp_path):
    text = csv_text([row()]) + '1002,Webshop,"inv"oice,Erika,,,1.00,EUR,2026-11-05,,\n'
    lines, _error = run_failing(write(tmp_path, text))
    assert len(lines) == 1 and lines[0].startswith("row 3: the CSV is malformed"), lines
    assert not Order.objects.exists()


def test_order_created_meanwhile_rolls_everything_back(shop, tmp_path):
    from orders.importing import OrderImportError, orders_import, parse_orders_csv

    parsed = parse_orders_csv(write(tmp_path, csv_text([row(number="1001"), row(number="1002")])))
    OrderFactory(sales_account=shop["Webshop"], number="1002")  # another import got there first
    with pytest.raises(OrderImportError, match="nothing was imported"):
        orders_import(parsed)
    assert list(Order.objects.values_list("number", flat=True)) == ["1002"]
    assert not OrderEvent.objects.exists()


def test_update_writes_only_the_changed_fields(shop, tmp_path):
    from orders.importing import orders_import, parse_orders_csv

    order = OrderFactory(sales_account=shop["Webshop"], number="1001", total=Decimal("1.00"))
    parsed = parse_orders_csv(write(tmp_path, csv_text([row(number="1001", customer_name=order.customer_name,
                                                            customer_email=order.customer_email, total="2.00",
                                                            ordered_at="2026-10-01T12:00:00")])))
    Order.objects.filter(pk=order.pk).update(paid_at=berlin(2026, 11, 26, 9))  # marked paid meanwhile
    result = orders_import(parsed)
    assert (result.updated, result.changed_fields) == (1, {"total": 1})
    order.refresh_from_db()
    assert order.total == Decimal("2.00")
    assert order.paid_at == berlin(2026, 11, 26, 9)


# --- customer_is_business (optional column) --------------------------------------------------------

def test_business_column_is_optional_and_parsed(shop, tmp_path):
    columns = [*COLUMNS, "customer_is_business"]
    values = {"1001": "true", "1002": "0", "1003": "Ja", "1004": "nein", "1005": "1", "1006": ""}
    path = write(tmp_path, csv_text([row(number=n, customer_is_business=v) for n, v in values.items()],
                                    columns=columns))
    assert "created 6" in run(path)
    stored = dict(Order.objects.values_list("number", "customer_is_business"))
    assert stored == {"1001": True, "1002": False, "1003": True, "1004": False, "1005": True, "1006": False}


def test_business_column_absent_keeps_the_stored_value(shop, tmp_path):
    path = write(tmp_path, csv_text([row(customer_is_business="ja")], columns=[*COLUMNS, "customer_is_business"]))
    run(path)
    # a later export without the column (or with an empty cell) changes nothing
    assert "unchanged" in run(write(tmp_path, csv_text([row()]), name="again.csv"))
    assert "(1 unchanged)" in run(write(tmp_path, csv_text([row(customer_is_business="")],
                                                           columns=[*COLUMNS, "customer_is_business"]),
                                        name="empty.csv"))
    assert Order.objects.get().customer_is_business is True
    out = run(write(tmp_path, csv_text([row(customer_is_business="false")],
                                       columns=[*COLUMNS, "customer_is_business"]), name="off.csv"))
    assert "updated 1" in out
    assert Order.objects.get().customer_is_business is False


def test_business_column_bad_value_is_refused(shop, tmp_path):
    path = write(tmp_path, csv_text([row(customer_is_business="vielleicht")],
                                    columns=[*COLUMNS, "customer_is_business"]))
    lines, _exc = run_failing(path)
    assert any('row 2, column customer_is_business: "vielleicht" is not a yes/no value' in line for line in lines)
    assert not Order.objects.exists()


def test_a_file_as_german_excel_writes_it_is_imported(shop, tmp_path):
    """Semicolons, a BOM, decimal commas with thousands dots, and dd.mm.yyyy dates (issue 18, item 9)."""
    text = csv_text([
        row(total="1.249,90", ordered_at="05.11.2026", paid_at=""),
        row(number="1002", total="49,90", ordered_at="5.11.2026 14:30", paid_at="06.11.2026 09:15:00"),
        row(number="1003", total="12.50", ordered_at="2026-11-05"),  # the ISO forms still work in the same file
    ], delimiter=";")
    out = run(write(tmp_path, text, name="long.csv", bom=True))
    assert "created 3, updated 0" in out
    first, second = (Order.objects.get(number=n) for n in ("1001", "1002"))
    assert first.total == Decimal("1249.90")
    assert first.ordered_at == berlin(2026, 11, 5)
    assert second.total == Decimal("49.90")
    assert second.ordered_at == berlin(2026, 11, 5, 14, 30)
    assert second.paid_at == berlin(2026, 11, 6, 9, 15)
    event = OrderEvent.objects.get(order=first)
    assert event.details == {"file": "long.csv", "row": 2}


# --- the postal address of letters (docs/rules/letters.md) -----------------------------------------

ADDRESS_COLUMNS = (*COLUMNS, "customer_number", "customer_street", "customer_postcode", "customer_city",
                   "customer_country")


def test_postal_address_columns_imported_and_empty_cells_keep_it(shop, tmp_path):
    address = {"customer_number": "K-7", "customer_street": "Lindenallee 5", "customer_postcode": "80331",
               "customer_city": "München", "customer_country": "de"}
    run(write(tmp_path, csv_text([row(**address)], columns=ADDRESS_COLUMNS)))
    order = Order.objects.get(number="1001")
    assert (order.customer_number, order.customer_street, order.customer_postcode, order.customer_city,
            order.customer_country) == ("K-7", "Lindenallee 5", "80331", "München", "DE")
    run(write(tmp_path, csv_text([row(customer_city="Augsburg")], columns=ADDRESS_COLUMNS), name="again.csv"))
    run(write(tmp_path, csv_text([row()]), name="without.csv"))  # no address columns at all
    order.refresh_from_db()
    assert (order.customer_street, order.customer_city) == ("Lindenallee 5", "Augsburg")


def test_bad_country_is_reported_and_nothing_imported(shop, tmp_path):
    lines, _error = run_failing(write(tmp_path, csv_text([row(customer_country="Germany")], columns=ADDRESS_COLUMNS)))
    assert lines == ['row 2, column customer_country: "Germany" is not a two-letter ISO 3166 country code (e.g. DE)']
    assert not Order.objects.exists()
