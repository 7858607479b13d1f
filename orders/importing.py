"""Order import from CSV: `python manage.py import_orders FILE.csv`.

Two phases, so that a bad file changes nothing:
1. `parse_orders_csv` reads and validates every row (no writes; three reads: accounts, payment
   methods and, per sales account, the existing orders of the numbers in the file in chunks).
2. `orders_import` upserts in one transaction with batched INSERTs (new orders) and batched
   `INSERT ... ON CONFLICT DO UPDATE` (changed orders), plus one audit `OrderEvent` per written order.

An import only writes the order's own data. It never touches the dunning state (reminders sent,
last reminder, flags, blocks), and an empty `paid_at` / `cancelled_at` never clears a value already
in the database: payments and cancellations arrive, an export made before them does not undo them."""

from __future__ import annotations

import csv
import datetime
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import NamedTuple
from zoneinfo import ZoneInfo

from babel.numbers import list_currencies
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Language, SalesAccount
from common.dates import local_date, tz
from common.iterables import chunked

from .audit import order_events_log
from .models import Order, OrderEvent, PaymentMethod
from .validation import (
    EARLIEST_DATE,
    DateOutOfRange,
    Later,
    control_character,
    later_date_issue,
    latest_order_date,
    order_date_in_range,
)

COLUMNS: tuple[str, ...] = (
    "number", "sales_account", "payment_method", "customer_name", "customer_email", "language", "total",
    "currency", "ordered_at", "paid_at", "cancelled_at",
)
# Columns a file may leave out; an absent one leaves the stored value alone (a new order gets the default).
# The postal address of letters: an empty cell, like an absent column, leaves the stored value alone.
ADDRESS_COLUMNS: tuple[str, ...] = (
    "customer_number", "customer_street", "customer_postcode", "customer_city", "customer_country")
OPTIONAL_COLUMNS: tuple[str, ...] = ("customer_is_business", *ADDRESS_COLUMNS)
REQUIRED: frozenset[str] = frozenset(
    {"number", "sales_account", "payment_method", "customer_name", "total", "currency", "ordered_at"})
# The order fields an import sets; everything else on Order is dunning state and is left alone.
IMPORTED_FIELDS: tuple[str, ...] = (
    "payment_method", "customer_name", "customer_email", "language", "total", "currency", "ordered_at",
    "paid_at", "cancelled_at", "customer_is_business", *ADDRESS_COLUMNS,
)
_BOOLEANS = {"true": True, "1": True, "ja": True, "yes": True, "false": False, "0": False, "nein": False,
             "no": False}
BATCH_SIZE = 1000
LOOKUP_CHUNK = 900  # numbers per `IN (...)` when looking up existing orders (below SQLite's variable limit)

_TOTAL = re.compile(r"^\d{1,10}(?:\.\d{1,2})?$")
_NEGATIVE_TOTAL = re.compile(r"^-\s*\d+(?:[.,]\d*)?$")
_LANGUAGES = frozenset(Language.values)
_MAX_LENGTH = {name: Order._meta.get_field(name).max_length  # the country has its own check
               for name in ("number", "customer_name", "customer_email", *ADDRESS_COLUMNS[:-1])}
_COUNTRY = re.compile(r"^[A-Z]{2}$")


class OrderImportError(ValueError):
    """The file cannot be imported. `problems` holds one line per problem ("row 7, column total: ...")."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


class OrderFileError(Exception):
    """The file cannot be read at all (missing, not UTF-8, empty): one line, no row numbers."""


@dataclass(frozen=True, slots=True)
class OrderRow:
    """One validated row of the file. `row` is the spreadsheet row number (the header is row 1)."""

    row: int
    number: str
    sales_account_id: int
    payment_method_id: int
    customer_name: str
    customer_email: str
    language: str
    total: Decimal
    currency: str
    ordered_at: datetime.datetime
    paid_at: datetime.datetime | None
    cancelled_at: datetime.datetime | None
    customer_is_business: bool | None = None  # None: the column is absent or the cell empty
    address: tuple[str, ...] = ("",) * len(ADDRESS_COLUMNS)  # ADDRESS_COLUMNS' cells; "" leaves it alone

    @property
    def key(self) -> tuple[int, str]:
        return (self.sales_account_id, self.number)


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    changed_fields: dict[str, int] = field(default_factory=dict)  # field name -> number of orders it changed in

    def summary(self) -> str:
        return f"created {self.created}, updated {self.updated} ({self.unchanged} unchanged)"


# --- reading ----------------------------------------------------------------------------------

def read_text(path: Path) -> str:
    """The file's text: UTF-8, with or without BOM. Raises OrderFileError with one line."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise OrderFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise OrderFileError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise OrderFileError(
            f"{path}: not UTF-8 (byte 0x{data[exc.start]:02x} at position {exc.start}); "
            "save it as \"CSV UTF-8\"") from None


def sniff_delimiter(header_line: str) -> str:
    """`;` (German Excel) or `,`, whichever the header line uses more."""
    return ";" if header_line.count(";") > header_line.count(",") else ","


def split_rows(text: str) -> tuple[list[str], Iterator[list[str]]]:
    """The header (stripped, lower case) and the data rows of the CSV text."""
    if not text.strip():
        raise OrderFileError(f"the file is empty (expected the header: {','.join(COLUMNS)})")
    delimiter = sniff_delimiter(text.lstrip("\r\n").split("\n", 1)[0])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"', strict=True)
    header = next(reader)
    while not any(cell.strip() for cell in header):  # blank lines before the header
        header = next(reader)
    return [h.strip().lower() for h in header], reader


def header_problems(header: list[str]) -> list[str]:
    problems = []
    seen: set[str] = set()
    for name in header:
        if name in seen:
            problems.append(f"row 1, column {name or '(empty)'}: the column appears twice")
        elif name not in COLUMNS and name not in OPTIONAL_COLUMNS:
            problems.append(f"row 1, column {name or '(empty)'}: unexpected column "
                            f"(expected {','.join(COLUMNS)}, optionally {','.join(OPTIONAL_COLUMNS)})")
        seen.add(name)
    problems += [f"row 1, column {name}: missing column" for name in COLUMNS if name not in seen]
    return problems


# --- values -----------------------------------------------------------------------------------

_GERMAN_DATE = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{2}|\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?")


class TwoDigitYear(ValueError):
    """05.11.26: the century is a guess, so the cell is refused with how to write it."""


def parse_german_datetime(text: str) -> datetime.datetime | None:
    """What German Excel writes for a date or date-time cell (05.11.2026, 5.11.2026 14:30,
    05.11.2026 14:30:00) as a naive datetime; None when the text is not of that shape. Raises
    TwoDigitYear for 05.11.26 and ValueError for an impossible date (31.02.2026)."""
    found = _GERMAN_DATE.fullmatch(text)
    if not found:
        return None
    day, month, year, hour, minute, second = found.groups()
    if len(year) == 2:
        raise TwoDigitYear(text)
    return datetime.datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0))


def parse_datetime(text: str, tz: ZoneInfo, *, spreadsheet: bool = False) -> datetime.datetime:
    """ISO 8601 date or date-time; naive values and plain dates are in `tz` (in the hour the clocks go
    back, the first, summer-time, reading). With `spreadsheet` (CSV files) also German Excel's
    05.11.2026 and 05.11.2026 14:30, in `tz`. Raises ValueError (TwoDigitYear for 05.11.26);
    DateOutOfRange for a value beyond the ends of the calendar in UTC (0001-01-01 in `tz` is 1 BC
    in UTC)."""
    german = parse_german_datetime(text) if spreadsheet else None
    value = german or datetime.datetime.fromisoformat(text)
    if timezone.is_naive(value):
        value = value.replace(tzinfo=tz)
    # In UTC: an aware time in the hour the clocks go back compares unequal to every time in another
    # zone (PEP 495), which would make each re-import "change" it.
    try:
        return value.astimezone(datetime.UTC)
    except OverflowError:
        raise DateOutOfRange(text) from None


def out_of_range(name: str, today: datetime.date) -> str:
    if name == "ordered_at":
        return f"is out of range (order dates from {EARLIEST_DATE} to {latest_order_date(today)})"
    return f"is out of range (from {EARLIEST_DATE} to today, {today})"


def date_problems(row: int, dates: dict[str, datetime.datetime | None], raw: dict[str, str],
                  today: datetime.date) -> list[str]:
    """Order dates from EARLIEST_DATE to a year after today; paid and cancelled dates from the
    order's day to today (orders.validation)."""
    problems = []
    ordered_at = dates["ordered_at"]
    if ordered_at is not None and not order_date_in_range(ordered_at, today=today):
        problems.append(_cell_problem(row, "ordered_at", raw["ordered_at"], out_of_range("ordered_at", today)))
        ordered_at = None
    for name in ("paid_at", "cancelled_at"):
        value = dates[name]
        issue = None if value is None else later_date_issue(value, ordered_at=ordered_at, today=today)
        if issue == Later.BEFORE_ORDER:
            problems.append(_cell_problem(row, name, raw[name],
                                          f"is before the order date ({local_date(ordered_at)})"))
        elif issue:
            problems.append(_cell_problem(row, name, raw[name], out_of_range(name, today)))
    return problems


_GERMAN_TOTAL = re.compile(r"\d{1,3}(?:\.\d{3})+,\d{1,2}|\d+,\d{1,2}")
_CURRENCY_SIGN = re.compile(r"[€$£¥]|\b(?:EUR|USD|GBP|CHF)\b")


def parse_total(text: str, *, spreadsheet: bool = False) -> Decimal:
    """A non-negative decimal with a dot and at most 2 decimals. With `spreadsheet` (CSV files) also
    as German Excel writes it: a decimal comma and dots between thousands (1.249,90, 49,90).
    Raises ValueError with the reason and how to write it."""
    if _NEGATIVE_TOTAL.match(text):
        raise ValueError("is negative")
    if spreadsheet and _GERMAN_TOTAL.fullmatch(text):
        text = text.replace(".", "").replace(",", ".")
    if not _TOTAL.match(text):
        if _CURRENCY_SIGN.search(text):
            raise ValueError("contains a currency sign: write only the number (1249.90 or 1.249,90), "
                             "the currency goes into the currency column")
        if re.fullmatch(r"\d+,\d{1,2}", text):
            raise ValueError("is not a decimal with a dot (write 12.50, not 12,50)")
        if re.fullmatch(r"\d{1,3}(?:\.\d{3})+", text):
            raise ValueError("is ambiguous: a dot with three digits after it could be a thousands separator; "
                             "write 1234.00 (or 1.234,00 as German Excel does)" if spreadsheet else
                             "has more than 2 decimals")
        if re.fullmatch(r"\d+\.\d{3,}", text):
            raise ValueError("has more than 2 decimals")
        raise ValueError("is not an amount like 12.50 (digits, a dot, at most 2 decimals)")
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the regex admits only valid decimals
        raise ValueError("is not a decimal") from None


# --- validation -------------------------------------------------------------------------------

class StoredOrder(NamedTuple):
    """The imported fields of an order already in the database (a tuple: 100,000 of them stay small)."""

    id: int
    payment_method: int
    customer_name: str
    customer_email: str
    language: str
    total: Decimal
    currency: str
    ordered_at: datetime.datetime
    paid_at: datetime.datetime | None
    cancelled_at: datetime.datetime | None
    customer_is_business: bool
    customer_number: str
    customer_street: str
    customer_postcode: str
    customer_city: str
    customer_country: str


assert StoredOrder._fields[1:] == IMPORTED_FIELDS  # _changes() zips them


@dataclass
class ParsedFile:
    rows: list[OrderRow]
    existing: dict[tuple[int, str], StoredOrder]  # the orders of the file already in the database


def _cell_problem(row: int, column: str, raw: str, reason: str) -> str:
    return f'row {row}, column {column}: "{raw}" {reason}'


def validate_rows(header: list[str], records: Iterable[list[str]], *, accounts: dict[str, int],
                  methods: dict[str, int], currencies: frozenset[str], tz: ZoneInfo,
                  account_names: dict[int, str], today: datetime.date, spreadsheet: bool = False
                  ) -> tuple[list[OrderRow], list[str]]:
    """Check every row; returns the good rows and one line per problem (all of them, not just the first).
    `spreadsheet` (CSV files, not the API) also accepts amounts and dates as German Excel writes them.
    A cell with a control character or line break (NUL, CR, LF, tab, ...) is refused first and
    alone: its text is never echoed, so every problem stays one line."""
    index = {name: i for i, name in enumerate(header)}
    width = len(header)
    rows: list[OrderRow] = []
    problems: list[str] = []
    first_seen: dict[tuple[int, str], int] = {}
    known_accounts = ", ".join(sorted(accounts)) or "none"
    known_methods = ", ".join(sorted(methods)) or "none"
    row_no = 1
    try:
        for row_no, record in enumerate(records, start=2):
            if not any(cell.strip() for cell in record):
                continue  # empty line, or a spreadsheet's trailing ";;;;;"
            if len(record) != width:
                problems.append(f"row {row_no}: {len(record)} fields, the header has {width}")
                continue
            cells = {name: record[i].strip() for name, i in index.items()}
            bad: list[str] = []
            for name in index:
                char = control_character(record[index[name]])
                if char:
                    bad.append(f"row {row_no}, column {name}: contains a control character ({char}); "
                               "only one line of text is allowed")
            if bad:
                problems += bad
                continue
            for name in COLUMNS:
                if name in REQUIRED and not cells[name]:
                    bad.append(f"row {row_no}, column {name}: empty (required)")
            for name, limit in _MAX_LENGTH.items():
                if len(cells.get(name, "")) > limit:
                    bad.append(_cell_problem(row_no, name, cells[name][:20] + "...",
                                             f"is longer than {limit} characters"))

            account_id = accounts.get(cells["sales_account"])
            if cells["sales_account"] and account_id is None:
                bad.append(_cell_problem(row_no, "sales_account", cells["sales_account"],
                                         f"is not a sales account (known: {known_accounts})"))
            method_id = methods.get(cells["payment_method"])
            if cells["payment_method"] and method_id is None:
                bad.append(_cell_problem(row_no, "payment_method", cells["payment_method"],
                                         f"is not a payment method code (known: {known_methods})"))
            email = cells["customer_email"]
            if email:
                try:
                    validate_email(email)
                except ValidationError:
                    bad.append(_cell_problem(row_no, "customer_email", email, "is not a valid e-mail address"))
            language = cells["language"].lower()
            if language and language not in _LANGUAGES:
                bad.append(_cell_problem(row_no, "language", cells["language"],
                                         f"is not a language (empty, {' or '.join(sorted(_LANGUAGES))})"))
            total = None
            if cells["total"]:
                try:
                    total = parse_total(cells["total"], spreadsheet=spreadsheet)
                except ValueError as exc:
                    bad.append(_cell_problem(row_no, "total", cells["total"], str(exc)))
            currency = cells["currency"].upper()
            if currency and currency not in currencies:
                bad.append(_cell_problem(row_no, "currency", cells["currency"], "is not an ISO 4217 currency code"))
            is_business = None
            raw_business = cells.get("customer_is_business", "")
            if raw_business:
                is_business = _BOOLEANS.get(raw_business.lower())
                if is_business is None:
                    bad.append(_cell_problem(row_no, "customer_is_business", raw_business,
                                             "is not a yes/no value (true, false, 1, 0, ja, nein; empty: unchanged)"))
            address = tuple(cells.get(name, "") for name in ADDRESS_COLUMNS)
            country = cells.get("customer_country", "").upper()
            if country:
                address = (*address[:-1], country)
                if not _COUNTRY.match(country):
                    bad.append(_cell_problem(row_no, "customer_country", cells["customer_country"],
                                             "is not a two-letter ISO 3166 country code (e.g. DE)"))
            dates: dict[str, datetime.datetime | None] = {}
            for name in ("ordered_at", "paid_at", "cancelled_at"):
                dates[name] = None
                if cells[name]:
                    try:
                        dates[name] = parse_datetime(cells[name], tz, spreadsheet=spreadsheet)
                    except DateOutOfRange:
                        bad.append(_cell_problem(row_no, name, cells[name], out_of_range(name, today)))
                    except TwoDigitYear:
                        bad.append(_cell_problem(row_no, name, cells[name],
                                                 "has a two-digit year: write the year in full (05.11.2026 or "
                                                 "2026-11-05)"))
                    except ValueError:
                        bad.append(_cell_problem(row_no, name, cells[name], (
                            "is not a date like 2026-11-05 or 05.11.2026, or a date-time like "
                            "2026-11-05T14:30:00+01:00 or 05.11.2026 14:30") if spreadsheet else (
                            "is not an ISO 8601 date or date-time (e.g. 2026-11-05 or 2026-11-05T14:30:00+01:00)")))
            bad += date_problems(row_no, dates, cells, today)
            if account_id is not None and cells["number"]:
                key = (account_id, cells["number"])
                if key in first_seen:
                    bad.append(_cell_problem(row_no, "number", cells["number"],
                                             f"appears more than once for sales account "
                                             f"\"{account_names[account_id]}\" (first in row {first_seen[key]})"))
                else:
                    first_seen[key] = row_no
            if bad:
                problems += bad
                continue
            rows.append(OrderRow(
                row=row_no, number=cells["number"], sales_account_id=account_id, payment_method_id=method_id,
                customer_name=cells["customer_name"], customer_email=email, language=language, total=total,
                currency=currency, ordered_at=dates["ordered_at"], paid_at=dates["paid_at"],
                cancelled_at=dates["cancelled_at"], customer_is_business=is_business, address=address,
            ))
    except csv.Error as exc:
        problems.append(f"row {row_no + 1}: the CSV is malformed ({exc})")  # csv rows count from the last good one
    return rows, problems



def existing_orders(rows: Sequence[OrderRow]) -> dict[tuple[int, str], StoredOrder]:
    """The stored orders among `rows`, by (account id, number). One query per sales account and chunk
    of numbers (never one per row); the unique index (account, number) serves each."""
    numbers_by_account: dict[int, list[str]] = {}
    for r in rows:
        numbers_by_account.setdefault(r.sales_account_id, []).append(r.number)
    found: dict[tuple[int, str], StoredOrder] = {}
    for account_id, numbers in numbers_by_account.items():
        for chunk in chunked(numbers, LOOKUP_CHUNK):
            for number, *values in (Order.objects.filter(sales_account_id=account_id, number__in=chunk).order_by()
                                    .values_list("number", "id", *IMPORTED_FIELDS)):
                found[(account_id, number)] = StoredOrder(*values)
    return found


def parse_orders_csv(path: Path, *, now: datetime.datetime | None = None) -> ParsedFile:
    """Read and validate the file. Raises OrderFileError (unreadable) or OrderImportError (bad rows)."""
    now = now or timezone.now()
    text = read_text(path)
    try:
        header, records = split_rows(text)
    except (csv.Error, StopIteration) as exc:
        reason = str(exc) or f"no line with column names; expected {','.join(COLUMNS)}"
        raise OrderFileError(f"{path}: the header cannot be read ({reason})") from None
    problems = header_problems(header)
    if problems:
        raise OrderImportError(problems)
    account_pairs = list(SalesAccount.objects.values_list("name", "id"))
    accounts = dict(account_pairs)
    methods = dict(PaymentMethod.objects.values_list("code", "id"))
    rows, problems = validate_rows(
        header, records, accounts=accounts, methods=methods, currencies=frozenset(list_currencies()),
        tz=tz(), account_names={i: n for n, i in account_pairs}, today=local_date(now), spreadsheet=True)
    if problems:
        raise OrderImportError(problems)
    return ParsedFile(rows=rows, existing=existing_orders(rows))


# --- writing ----------------------------------------------------------------------------------

def _order_from_row(r: OrderRow, current: StoredOrder | None) -> Order:
    """The order as it will be after the import. An empty paid_at / cancelled_at keeps the stored value."""
    return Order(
        sales_account_id=r.sales_account_id, number=r.number, payment_method_id=r.payment_method_id,
        customer_name=r.customer_name, customer_email=r.customer_email, language=r.language, total=r.total,
        currency=r.currency, ordered_at=r.ordered_at,
        paid_at=r.paid_at or (current.paid_at if current else None),
        cancelled_at=r.cancelled_at or (current.cancelled_at if current else None),
        customer_is_business=_is_business(r, current),
        **dict(zip(ADDRESS_COLUMNS, _address(r, current), strict=True)),
    )


def _address(r: OrderRow, current: StoredOrder | None) -> tuple[str, ...]:
    """The row's address cells; an empty one keeps the stored value (new orders: blank)."""
    stored = current[-len(ADDRESS_COLUMNS):] if current else ("",) * len(ADDRESS_COLUMNS)
    return tuple(new or old for new, old in zip(r.address, stored, strict=True))


def _is_business(r: OrderRow, current: StoredOrder | None) -> bool:
    """The row's value; an absent column or empty cell keeps the stored one (new orders: consumer)."""
    if r.customer_is_business is not None:
        return r.customer_is_business
    return current.customer_is_business if current else False


def _changes(r: OrderRow, current: StoredOrder) -> list[str]:
    """The imported fields whose value the row changes (datetimes compared as instants)."""
    new = (r.payment_method_id, r.customer_name, r.customer_email, r.language, r.total, r.currency, r.ordered_at,
           r.paid_at or current.paid_at, r.cancelled_at or current.cancelled_at, _is_business(r, current),
           *_address(r, current))
    return [name for name, value, old in zip(IMPORTED_FIELDS, new, current[1:], strict=True) if value != old]


def orders_import(parsed: ParsedFile, *, source: str = "", now: datetime.datetime | None = None,
                  dry_run: bool = False) -> ImportResult:
    """Create the new orders and update the changed ones in one transaction; returns the counts.
    Unchanged orders are not written. Each written order gets an OrderEvent ("imported" or
    "import_updated" with the changed fields)."""
    now = now or timezone.now()
    # The rows were checked when the file was read; the dates again here, against this `now`, so
    # no caller of this function stores a date out of range.
    today = local_date(now)
    problems = [line for r in parsed.rows for line in date_problems(
        r.row, {"ordered_at": r.ordered_at, "paid_at": r.paid_at, "cancelled_at": r.cancelled_at},
        {"ordered_at": r.ordered_at.isoformat(), "paid_at": r.paid_at and r.paid_at.isoformat(),
         "cancelled_at": r.cancelled_at and r.cancelled_at.isoformat()}, today)]
    if problems:
        raise OrderImportError(problems)
    result = ImportResult()
    new: list[OrderRow] = []
    updated: list[tuple[OrderRow, list[str]]] = []
    for r in parsed.rows:
        current = parsed.existing.get(r.key)
        if current is None:
            new.append(r)
            continue
        changed = _changes(r, current)
        if changed:
            updated.append((r, changed))
            for name in changed:
                result.changed_fields[name] = result.changed_fields.get(name, 0) + 1
        else:
            result.unchanged += 1
    result.created, result.updated = len(new), len(updated)
    if dry_run:
        return result
    try:
        with transaction.atomic():
            for chunk in chunked(new, BATCH_SIZE):
                # A plain INSERT: an order someone else created since the check raises and rolls back.
                orders = Order.objects.bulk_create([_order_from_row(r, None) for r in chunk])
                order_events_log([(order.id, {"file": source, "row": r.row})
                                  for r, order in zip(chunk, orders, strict=True)],
                                 action=OrderEvent.Action.IMPORTED, at=now)
            # Grouped by the fields a row changes, and only those are written: a value changed meanwhile
            # by someone else (the back office marking an order paid, say) is never overwritten with
            # the stale copy read before the transaction. Few groups in practice ({paid_at}, ...).
            groups: dict[tuple[str, ...], list[OrderRow]] = {}
            for r, changed in updated:
                groups.setdefault(tuple(changed), []).append(r)
            for changed, group in groups.items():
                for chunk in chunked(group, BATCH_SIZE):
                    # INSERT ... ON CONFLICT (sales_account, number) DO UPDATE SET <changed fields>: one
                    # statement per batch (bulk_update would build a CASE per row); dunning state untouched.
                    Order.objects.bulk_create(
                        [_order_from_row(r, parsed.existing[r.key]) for r in chunk], update_conflicts=True,
                        unique_fields=["sales_account", "number"], update_fields=[*changed, "updated_at"])
                    order_events_log(
                        [(parsed.existing[r.key].id, {"file": source, "row": r.row, "fields": list(changed)})
                         for r in chunk], action=OrderEvent.Action.IMPORT_UPDATED, at=now)
    except IntegrityError as exc:
        reason = " ".join(str(exc).split())
        raise OrderImportError([f"the database refused the import, nothing was imported ({reason}); "
                                "was another import running at the same time? Try again."]) from None
    return result


def import_orders_file(path: Path | str, *, dry_run: bool = False, now: datetime.datetime | None = None
                       ) -> ImportResult:
    """Validate and import one CSV file (see the module docstring)."""
    path = Path(path)
    parsed = parse_orders_csv(path, now=now)
    return orders_import(parsed, source=path.name, now=now, dry_run=dry_run)
