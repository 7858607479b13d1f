"""The overview's filtered list as a file: CSV or Excel (xlsx), one row per order, in the order and
with exactly the filter the overview shows (the same OpenOrderFilter).

Formats follow the language of the page: in German the CSV is separated by semicolons with a
decimal comma and dates as 05.11.2026 (what German Excel reads when the file is double-clicked);
in English by commas with a decimal point and ISO dates. CSV files start with a UTF-8 byte-order
mark so Excel reads umlauts. In the xlsx file amounts and dates are numbers and dates with a
number format (German: DD.MM.YYYY), so they sort and add up.

Formula injection: a text cell that starts with = + - @, a tab or a carriage return would be read
as a formula by a spreadsheet (`=HYPERLINK(...)` in a customer name). Such text gets a leading
apostrophe in both formats (the OWASP advice); in xlsx every text cell is also written as a
string (`write_string`), never as a formula.

Memory: rows are read with a server-side cursor in chunks (`QuerySet.iterator`) and never held
all at once. The CSV is streamed to the client as it is written; the xlsx is a zip file, so it is
written row by row to a temporary file (XlsxWriter's constant-memory mode) and then streamed
from disk."""

from __future__ import annotations

import csv
import datetime
import io
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet
from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from common.dates import local_date
from dunning.models import DunningLevel

CHUNK_SIZE = 2000  # rows fetched per round trip of the server-side cursor
XLSX_MAX_ROWS = 1_048_575  # Excel's sheet limit, less the header row
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

# (label, kind) per column; the values come from `_row` in the same order
_FIELDS = (
    "number", "ordered_at", "customer_name", "customer_email", "total", "currency",
    "payment_method__name", "payment_method__payment_term_days", "sales_account__name",
    "reminders_sent", "last_reminder_at", "current_level", "dunning_blocked", "dunning_block_reason",
    "flagged_for_cancellation_at",
)


def columns() -> list[tuple[str, str]]:
    """(header, kind) of each column; kind is text, date, money, int."""
    return [
        (pgettext("export column", "Order number"), "text"),
        (pgettext("export column", "Order date"), "date"),
        (pgettext("export column", "Customer"), "text"),
        (pgettext("export column", "E-mail"), "text"),
        (pgettext("export column", "Amount"), "money"),
        (pgettext("export column", "Currency"), "text"),
        (pgettext("export column", "Payment method"), "text"),
        (pgettext("export column", "Sales account"), "text"),
        (pgettext("export column", "Due date"), "date"),
        (pgettext("export column", "Days overdue"), "int"),
        (pgettext("export column", "Sent reminders"), "int"),
        (pgettext("export column", "Last reminder"), "date"),
        (pgettext("export column", "Level"), "text"),
        (pgettext("export column", "Dunning blocked"), "text"),
        (pgettext("export column", "Block reason"), "text"),
        (pgettext("export column", "Flagged for cancellation"), "date"),
    ]


def neutralize(text: str) -> str:
    """`text` safe for a spreadsheet cell: a leading ' when it would start a formula."""
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


@dataclass(frozen=True)
class ExportFormat:
    german: bool

    @property
    def delimiter(self) -> str:
        return ";" if self.german else ","

    @property
    def date_format(self) -> str:  # for CSV text
        return "%d.%m.%Y" if self.german else "%Y-%m-%d"

    @property
    def xlsx_date_format(self) -> str:
        return "DD.MM.YYYY" if self.german else "YYYY-MM-DD"


def _local_day(value: datetime.datetime | None) -> datetime.date | None:
    if value is None:
        return None
    try:
        return local_date(value)
    except OverflowError:  # stored near 9999-12-31 before dates were bounded
        return None


def _rows(queryset: QuerySet, *, today: datetime.date) -> Iterator[list[Any]]:
    """The export's rows as Python values (dates, Decimals, ints, text), read in chunks."""
    yes, no = _("Yes"), _("No")
    labels = {level.value: str(level.label) for level in DunningLevel}
    for (number, ordered_at, name, email, total, currency, method, term, account, sent, last, level,
         blocked, reason, flagged) in queryset.values_list(*_FIELDS).iterator(chunk_size=CHUNK_SIZE):
        ordered_on = _local_day(ordered_at)
        try:
            due = ordered_on + datetime.timedelta(days=term) if ordered_on else None
        except OverflowError:
            due = None
        yield [
            number, ordered_on, name, email, total, currency, method, account, due,
            (today - due).days if due else None, sent, _local_day(last), labels.get(level, ""),
            yes if blocked else no, reason, _local_day(flagged),
        ]


def _csv_cell(value: Any, kind: str, fmt: ExportFormat) -> str:
    if value is None:
        return ""
    if kind == "date":
        return value.strftime(fmt.date_format)
    if kind == "money":
        text = f"{Decimal(value):.2f}"
        return text.replace(".", ",") if fmt.german else text
    if kind == "int":
        return str(value)
    return neutralize(str(value))


def csv_chunks(queryset: QuerySet, *, today: datetime.date, fmt: ExportFormat) -> Iterator[bytes]:
    """The CSV file in pieces of a few hundred rows (for a StreamingHttpResponse)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=fmt.delimiter)
    cols = columns()
    writer.writerow([neutralize(label) for label, _kind in cols])
    kinds = [kind for _label, kind in cols]
    yield "\ufeff".encode() + buffer.getvalue().encode()
    buffer.seek(0)
    buffer.truncate()
    for i, row in enumerate(_rows(queryset, today=today), start=1):
        writer.writerow([_csv_cell(value, kind, fmt) for value, kind in zip(row, kinds, strict=True)])
        if i % 500 == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()


def xlsx_file(queryset: QuerySet, *, today: datetime.date, fmt: ExportFormat, title: str,
              progress: Callable[[int], None] | None = None):
    """The xlsx file as an open temporary file positioned at its start (closing it deletes it).
    XlsxWriter in constant-memory mode writes each row out as it goes (2.3 times as fast as
    openpyxl's write-only mode in a sketch of 20,000 rows, docs/benchmarks.md). The caller keeps the rows within
    XLSX_MAX_ROWS (more are cut off). `progress(rows written)` is called every CHUNK_SIZE rows and
    once at the end."""
    import xlsxwriter

    handle = tempfile.TemporaryFile(suffix=".xlsx")  # noqa: SIM115 - closed by the FileResponse
    workbook = xlsxwriter.Workbook(handle, {"constant_memory": True, "in_memory": False})
    sheet = workbook.add_worksheet(title[:31])
    formats = {
        "date": workbook.add_format({"num_format": fmt.xlsx_date_format}),
        "money": workbook.add_format({"num_format": "#,##0.00"}),
    }
    bold = workbook.add_format({"bold": True})
    cols = columns()
    widths = {"text": 22, "date": 12, "money": 12, "int": 10}
    for index, (label, kind) in enumerate(cols):
        sheet.set_column(index, index, widths[kind])
        sheet.write_string(0, index, neutralize(str(label)), bold)
    sheet.freeze_panes(1, 0)
    kinds = [kind for _label, kind in cols]
    written = 0
    for r, row in enumerate(_rows(queryset, today=today), start=1):
        if r > XLSX_MAX_ROWS:
            break
        written = r
        if progress is not None and r % CHUNK_SIZE == 0:
            progress(r)
        for c, (value, kind) in enumerate(zip(row, kinds, strict=True)):
            if value is None:
                continue
            if kind == "text":
                sheet.write_string(r, c, neutralize(str(value)))  # a string, never a formula
            elif kind == "date":
                sheet.write_datetime(r, c, datetime.datetime.combine(value, datetime.time()), formats["date"])
            elif kind == "money":
                sheet.write_number(r, c, float(value), formats["money"])
            else:
                sheet.write_number(r, c, value)
    workbook.close()
    handle.seek(0)
    if progress is not None:
        progress(written)
    return handle
