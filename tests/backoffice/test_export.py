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


# --- large Excel exports in the worker (backoffice.export_jobs) ---------------------------------------

@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def test_a_large_excel_export_is_written_by_the_worker_with_progress(bo_client, orders, settings, media, today,
                                                                     django_capture_on_commit_callbacks):
    from backoffice.models import ExportJob

    inline = read_xlsx(bo_client.get(URL, {"format": "xlsx", "o": "number"}))
    settings.EXPORT_ASYNC_XLSX_ROWS = 2
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = bo_client.get(URL, {"format": "xlsx", "o": "number"})
    job = ExportJob.objects.get()
    assert response.status_code == 302 and response.url == f"{URL}{job.pk}/" and len(callbacks) == 1
    assert job.total == 3 and job.params == [["o", "number"]] and job.language == "de"
    page = bo_client.get(response.url).content.decode()
    assert '<meta http-equiv="refresh"' in page and "0 von 3 Aufträgen geschrieben" in page
    assert 'href="/orders/open-payments/?o=number"' in page  # back to the same list
    assert bo_client.get(f"{URL}{job.pk}/file").status_code == 400  # not ready
    callbacks[0]()  # the commit: eager Celery writes the file inline
    job.refresh_from_db()
    assert job.is_finished and job.done == job.total == 3 and job.file and not job.error
    page = bo_client.get(response.url).content.decode()
    assert '<meta http-equiv="refresh"' not in page and "3 Aufträge sind in der Datei" in page
    download = bo_client.get(f"{URL}{job.pk}/file")
    assert f"offene-zahlungen-{today.isoformat()}.xlsx" in download["Content-Disposition"]
    values = [[c.value for c in row] for row in read_xlsx(download).iter_rows()]
    assert values == [[c.value for c in row] for row in inline.iter_rows()]  # what the inline export gives


def test_the_worker_writes_the_language_and_filter_of_the_request(bo_client, orders, settings, media,
                                                                  django_capture_on_commit_callbacks):
    from backoffice.models import ExportJob

    settings.EXPORT_ASYNC_XLSX_ROWS = 0
    with django_capture_on_commit_callbacks(execute=True):
        response = bo_client.get(URL, {"format": "xlsx", "q": "@evil", "o": "-number"}, HTTP_ACCEPT_LANGUAGE="en")
    job = ExportJob.objects.get()
    assert job.language == "en" and response.status_code == 302
    sheet = read_xlsx(bo_client.get(f"{URL}{job.pk}/file"))
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:2] == ("Order number", "Order date")
    assert [r[0] for r in rows[1:]] == ["B-2"]  # the search: B-2's e-mail address only
    assert rows[1][1].date() and sheet["B2"].number_format == "YYYY-MM-DD"


def test_a_broken_queue_is_stated_on_the_export_page(bo_client, orders, settings, media,
                                                      django_capture_on_commit_callbacks):
    from unittest import mock

    from kombu.exceptions import OperationalError

    settings.EXPORT_ASYNC_XLSX_ROWS = 1
    with mock.patch("backoffice.tasks.render_export.delay", side_effect=OperationalError("down")), \
            django_capture_on_commit_callbacks(execute=True):
        response = bo_client.get(URL, {"format": "xlsx"})
    page = bo_client.get(response.url).content.decode()
    assert "Der Export konnte nicht geschrieben werden" in page and "broker" in page
    assert '<meta http-equiv="refresh"' not in page


def test_exports_past_the_keeping_days_are_deleted_with_their_files(bo_client, orders, settings, media,
                                                                     django_capture_on_commit_callbacks):
    from backoffice import tasks
    from backoffice.export_jobs import export_jobs_purge
    from backoffice.models import ExportJob

    settings.EXPORT_ASYNC_XLSX_ROWS = 1
    settings.EXPORT_JOBS_KEEP_DAYS = 7
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            bo_client.get(URL, {"format": "xlsx"})
    old, new = ExportJob.objects.order_by("id")
    old_file = media / old.file.name
    assert old_file.exists()
    ExportJob.objects.filter(pk=old.pk).update(created_at=old.created_at - datetime.timedelta(days=8))
    assert export_jobs_purge(now=new.created_at) == 1
    assert list(ExportJob.objects.values_list("pk", flat=True)) == [new.pk]
    assert not old_file.exists() and (media / new.file.name).exists()
    assert bo_client.get(f"{URL}{old.pk}/").status_code == 404
    (media / new.file.name).unlink()
    gone = bo_client.get(f"{URL}{new.pk}/file")
    assert gone.status_code == 410 and "gibt es nicht mehr" in gone.content.decode()
    assert tasks.purge_export_jobs() == 0


def test_csv_is_streamed_whatever_its_length(bo_client, orders, settings):
    from backoffice.models import ExportJob

    settings.EXPORT_ASYNC_XLSX_ROWS = 1
    response = bo_client.get(URL, {"format": "csv"})
    assert response.streaming and len(read_csv(response)) == 4 and not ExportJob.objects.exists()
