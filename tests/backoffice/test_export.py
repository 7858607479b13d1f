"""Export of the overview's filtered list: CSV and xlsx, the overview's exact filter and sort, German
and English formats, formula injection escaped, streamed, constant queries."""

import csv
import datetime
import io
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from openpyxl import load_workbook

from tests.factories import OrderFactory

URL = "/orders/open-payments/export/"


def read_csv(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")  # Excel reads the umlauts as UTF-8
    delimiter = ";" if body.splitlines()[0].count(";") else ","
    return list(csv.reader(io.StringIO(body[1:]), delimiter=delimiter))


def read_xlsx(response):
    data = b"".join(response.streaming_content)
    return load_workbook(io.BytesIO(data)).active


@pytest.fixture
def orders(place, today):
    a = place(overdue=10, number="A-1", customer_name="Jürgen Müller", total=Decimal("1249.90"))
    b = place(overdue=30, sent=3, number="B-2", customer_name="=HYPERLINK(\"http://evil\")",
              customer_email="@evil.example", total=Decimal("5.00"))
    c = place(overdue=20, number="+C-3", customer_name="-Minus", dunning_blocked=True,
              dunning_block_reason="\tpays in instalments")
    return a, b, c


def test_csv_in_german_has_semicolons_decimal_comma_and_german_dates(bo_client, orders, today):
    response = bo_client.get(URL, {"format": "csv", "o": "number"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="offene-zahlungen-{today.isoformat()}.csv"'
    assert response.streaming  # written while read, never whole in memory
    rows = read_csv(response)
    assert rows[0][:5] == ["Auftragsnummer", "Auftragsdatum", "Kunde", "E-Mail", "Betrag"]
    by_number = {row[0]: row for row in rows[1:]}
    assert set(by_number) == {"A-1", "B-2", "'+C-3"}
    a = by_number["A-1"]
    assert a[2] == "Jürgen Müller"
    assert a[4] == "1249,90" and a[5] == "EUR"
    ordered_on = today - datetime.timedelta(days=24)
    assert a[1] == ordered_on.strftime("%d.%m.%Y")
    assert a[8] == (ordered_on + datetime.timedelta(days=14)).strftime("%d.%m.%Y")  # due date
    assert a[9] == "10"  # days overdue
    assert a[12] == "Mahnstufe 1" and a[13] == "Nein"


def test_csv_escapes_formula_cells(bo_client, orders):
    rows = read_csv(bo_client.get(URL, {"format": "csv", "o": "number"}))
    by_number = {row[0]: row for row in rows[1:]}
    b = by_number["B-2"]
    assert b[2] == "'=HYPERLINK(\"http://evil\")"
    assert b[3] == "'@evil.example"
    c = by_number["'+C-3"]
    assert c[2] == "'-Minus"
    assert c[13] == "Ja" and c[14] == "'\tpays in instalments"
    assert b[12] == "Alle Mahnungen versandt"


def test_csv_in_english_has_commas_decimal_point_and_iso_dates(bo_client, orders, today):
    response = bo_client.get(URL, {"format": "csv"}, HTTP_ACCEPT_LANGUAGE="en")
    rows = read_csv(response)
    assert rows[0][:2] == ["Order number", "Order date"]
    a = next(row for row in rows if row[0] == "A-1")
    assert a[4] == "1249.90"
    assert a[1] == (today - datetime.timedelta(days=24)).isoformat()


def test_xlsx_has_numbers_dates_with_german_formats_and_escaped_text(bo_client, orders, today):
    response = bo_client.get(URL, {"format": "xlsx", "o": "number"})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert f"offene-zahlungen-{today.isoformat()}.xlsx" in response["Content-Disposition"]
    sheet = read_xlsx(response)
    rows = list(sheet.iter_rows())
    assert [c.value for c in rows[0][:3]] == ["Auftragsnummer", "Auftragsdatum", "Kunde"]
    by_number = {row[0].value: row for row in rows[1:]}
    assert set(by_number) == {"A-1", "B-2", "'+C-3"}
    a = by_number["A-1"]
    assert a[4].value == 1249.9 and a[4].number_format == "#,##0.00"
    assert a[1].value.date() == today - datetime.timedelta(days=24)
    assert a[1].number_format == "DD.MM.YYYY"
    assert a[9].value == 10
    b = by_number["B-2"]
    assert b[2].value == "'=HYPERLINK(\"http://evil\")" and b[2].data_type == "s"
    assert b[3].value == "'@evil.example"
    assert by_number["'+C-3"][2].value == "'-Minus"
    for row in rows:  # nothing is a formula
        assert all(cell.data_type != "f" for cell in row)


def test_export_is_exactly_the_overviews_filter_and_sort(bo_client, orders):
    a, b, c = orders
    rows = read_csv(bo_client.get(URL, {"format": "csv", "dunning_level": "completed"}))
    assert [row[0] for row in rows[1:]] == ["B-2"]
    rows = read_csv(bo_client.get(URL, {"format": "csv", "blocked": "true"}))
    assert [row[0] for row in rows[1:]] == ["'+C-3"]
    rows = read_csv(bo_client.get(URL, {"format": "csv", "q": "müller"}))
    assert [row[0] for row in rows[1:]] == ["A-1"]
    rows = read_csv(bo_client.get(URL, {"format": "csv", "o": "-days_overdue"}))
    assert [row[0] for row in rows[1:]] == ["B-2", "'+C-3", "A-1"]
    # paid orders are not in the list of open payments
    OrderFactory(sales_account=a.sales_account, payment_method=a.payment_method, number="PAID-1",
                 paid_at=a.ordered_at)
    rows = read_csv(bo_client.get(URL, {"format": "csv"}))
    assert "PAID-1" not in [row[0] for row in rows]


def test_the_overview_links_the_export_with_its_filter(bo_client, orders):
    html = bo_client.get("/orders/open-payments/", {"blocked": "true", "o": "number"}).content.decode()
    assert 'href="/orders/open-payments/export/?format=xlsx&amp;blocked=true&amp;o=number"' in html
    assert 'href="/orders/open-payments/export/?format=csv&amp;blocked=true&amp;o=number"' in html


def test_the_completed_tab_offers_the_export_for_collection(bo_client, orders):
    html = bo_client.get("/orders/open-payments/", {"dunning_level": "completed"}).content.decode()
    assert "Nächster Schritt:" in html
    assert 'href="/orders/open-payments/export/?format=xlsx&amp;dunning_level=completed" id="export-collection-xlsx"' \
        in html
    assert "Für das Inkasso exportieren (Excel)" in html
    html = bo_client.get("/orders/open-payments/", {"dunning_level": "1"}).content.decode()
    assert "Nächster Schritt:" not in html


def test_bad_format_and_invalid_filter_are_a_clear_400(bo_client, orders):
    response = bo_client.get(URL, {"format": "pdf"})
    assert response.status_code == 400
    assert "CSV oder Excel" in response.content.decode()
    response = bo_client.get(URL, {"format": "csv", "sales_account": "999999"})
    assert response.status_code == 400
    assert "ungültig" in response.content.decode()


def test_export_needs_the_back_office(client, outsider_user, orders):
    client.force_login(outsider_user)
    assert client.get(URL, {"format": "csv"}).status_code == 403


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_query_count_does_not_grow_with_the_rows(bo_client, place, kind):
    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            response = bo_client.get(URL, {"format": kind, "o": "-days_overdue"})
            b"".join(response.streaming_content)
        return len(ctx.captured_queries)

    for i in range(3):
        place(overdue=10 + i)
    few = queries()
    for i in range(40):
        place(overdue=10 + i)
    assert queries() == few
    assert few <= 8
