"""Orders in through the API, through the CSV importer's own validation and upsert
(orders.importing): the same fields, the same checks, the same one-transaction batched write, and
like the import it never touches dunning state (reminders sent, blocks, flags). An item is turned
into a CSV record of strings and validated by `validate_rows`; its problems ("row N, column C: ...")
become per-item field errors."""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from babel.numbers import list_currencies

from accounts.models import SalesAccount
from common.dates import local_date, tz
from orders.importing import (
    COLUMNS,
    OPTIONAL_COLUMNS,
    ImportResult,
    OrderImportError,
    ParsedFile,
    existing_orders,
    orders_import,
    parse_total,
    validate_rows,
)
from orders.models import Order, PaymentMethod
from orders.validation import control_character
from payments.services import MAX_TRANSACTION_ID

MAX_BULK = 1000
# The fields of an order in the API: the import's columns, without the sales account (the key's),
# and its optional `customer_is_business` (a JSON true/false; absent or null leaves it alone) and
# postal address (strings; absent, null or empty leaves the stored value alone).
FIELDS: tuple[str, ...] = (*(c for c in COLUMNS if c != "sales_account"), *OPTIONAL_COLUMNS)
HEADER: list[str] = [*COLUMNS, *OPTIONAL_COLUMNS]
_CURRENCIES = frozenset(list_currencies())
_PROBLEM = re.compile(r"^row (\d+)(?:, column (\w+))?: (.*)$", re.S)


@dataclass
class FieldError:
    index: int | None  # the item in a bulk request
    field: str | None
    detail: str

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"detail": self.detail}
        if self.field:
            d["field"] = self.field
        if self.index is not None:
            d["index"] = self.index
        return d


class OrdersInvalid(ValueError):
    def __init__(self, errors: Sequence[FieldError]) -> None:
        super().__init__(f"{len(errors)} problems")
        self.errors = list(errors)


def _record(item: Any, index: int, account_name: str, errors: list[FieldError]) -> list[str] | None:
    if not isinstance(item, dict):
        errors.append(FieldError(index, None, "must be a JSON object"))
        return None
    bad = False
    for name in sorted(set(item) - set(FIELDS)):
        errors.append(FieldError(index, name, "unknown field (the API sets only " + ", ".join(FIELDS) + ")"))
        bad = True
    record = []
    for name in HEADER:
        if name == "sales_account":
            record.append(account_name)
            continue
        if name == "customer_is_business":
            flag = item.get(name)
            if flag is not None and not isinstance(flag, bool):
                errors.append(FieldError(index, name, "must be true, false or null"))
                bad = True
                continue
            record.append("" if flag is None else str(flag).lower())
            continue
        value = item.get(name)
        if value is None:
            value = ""
        if not isinstance(value, str):
            hint = ' (amounts are strings like "12.50")' if name == "total" else ""
            errors.append(FieldError(index, name, f"must be a string{hint}"))
            bad = True
            continue
        record.append(value)
    return None if bad else record


def orders_upsert(items: Sequence[Any], *, sales_account: SalesAccount, now: datetime.datetime
                  ) -> tuple[ImportResult, set[str]]:
    """Validate all items, then create or update them in one transaction (all or nothing). Returns
    the import's counts and the numbers that were created. Raises OrdersInvalid with every problem."""
    errors: list[FieldError] = []
    records = [_record(item, i, sales_account.name, errors) for i, item in enumerate(items)]
    if errors:
        raise OrdersInvalid(errors)
    rows, problems = validate_rows(
        HEADER, records, accounts={sales_account.name: sales_account.id},
        methods=dict(PaymentMethod.objects.values_list("code", "id")), currencies=_CURRENCIES, tz=tz(),
        account_names={sales_account.id: sales_account.name}, today=local_date(now))
    if problems:
        raise OrdersInvalid([_field_error(p) for p in problems])
    existing = existing_orders(rows)
    try:
        result = orders_import(ParsedFile(rows=rows, existing=existing), source="api", now=now)
    except OrderImportError as exc:
        raise OrdersInvalid([_field_error(p) for p in exc.problems]) from None
    return result, {r.number for r in rows if r.key not in existing}


def _field_error(problem: str) -> FieldError:
    m = _PROBLEM.match(problem)
    if not m:
        return FieldError(None, None, problem)
    row, column, detail = m.groups()
    return FieldError(int(row) - 2, column, detail)


# --- payments in ----------------------------------------------------------------------------------

PAYMENT_FIELDS: tuple[str, ...] = ("order_number", "amount", "currency", "booked_on", "transaction_id")
EARLIEST_BOOKING = datetime.date(2000, 1, 1)


@dataclass(frozen=True)
class PaymentIn:
    order_number: str
    amount: Decimal
    currency: str
    booked_on: datetime.date
    transaction_id: str


def payment_input(data: Any, *, now: datetime.datetime) -> PaymentIn:
    """The body of `POST /api/v1/payments`, checked: every value a JSON string, `amount` a decimal with
    a dot above zero, `currency` ISO 4217, `booked_on` an ISO date from 2000-01-01 to today,
    `transaction_id` 1 to 100 printable characters. Raises OrdersInvalid with every problem."""
    if not isinstance(data, dict):
        raise OrdersInvalid([FieldError(None, None, "the body must be a JSON object")])
    errors: list[FieldError] = []
    for name in sorted(set(data) - set(PAYMENT_FIELDS)):
        errors.append(FieldError(None, name, "unknown field (a payment has " + ", ".join(PAYMENT_FIELDS) + ")"))
    values: dict[str, str] = {}
    for name in PAYMENT_FIELDS:
        value = data.get(name)
        if value is None or value == "":
            errors.append(FieldError(None, name, "required"))
        elif not isinstance(value, str):
            hint = ' (amounts are strings like "12.50")' if name == "amount" else ""
            errors.append(FieldError(None, name, f"must be a string{hint}"))
        elif control_character(value):
            errors.append(FieldError(None, name, "contains a control character"))
        else:
            values[name] = value.strip()
    amount = None
    if "amount" in values:
        try:
            amount = parse_total(values["amount"])
        except ValueError as exc:
            errors.append(FieldError(None, "amount", str(exc)))
        else:
            if amount <= 0:
                errors.append(FieldError(None, "amount", "must be more than 0"))
    currency = values.get("currency", "").upper()
    if currency and currency not in _CURRENCIES:
        errors.append(FieldError(None, "currency", "is not an ISO 4217 currency code"))
    booked_on = None
    if "booked_on" in values:
        try:
            booked_on = datetime.date.fromisoformat(values["booked_on"])
        except ValueError:
            errors.append(FieldError(None, "booked_on", "must be an ISO 8601 date, e.g. 2026-11-26"))
        else:
            if booked_on > local_date(now):
                errors.append(FieldError(None, "booked_on", "is in the future"))
            elif booked_on < EARLIEST_BOOKING:
                errors.append(FieldError(None, "booked_on", "is before 2000-01-01"))
    if len(values.get("transaction_id", "")) > MAX_TRANSACTION_ID:
        errors.append(FieldError(None, "transaction_id", f"is longer than {MAX_TRANSACTION_ID} characters"))
    limit = Order._meta.get_field("number").max_length
    if len(values.get("order_number", "")) > limit:
        errors.append(FieldError(None, "order_number", f"is longer than {limit} characters"))
    if errors:
        raise OrdersInvalid(errors)
    return PaymentIn(values["order_number"], amount, currency, booked_on, values["transaction_id"])
