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
from typing import Any

from babel.numbers import list_currencies

from accounts.models import SalesAccount
from common.dates import local_date, tz
from orders.importing import (
    COLUMNS,
    ImportResult,
    OrderImportError,
    ParsedFile,
    existing_orders,
    orders_import,
    validate_rows,
)
from orders.models import PaymentMethod

MAX_BULK = 1000
# The fields of an order in the API: the import's columns, without the sales account (the key's).
FIELDS: tuple[str, ...] = tuple(c for c in COLUMNS if c != "sales_account")
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
    for name in COLUMNS:
        if name == "sales_account":
            record.append(account_name)
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
        list(COLUMNS), records, accounts={sales_account.name: sales_account.id},
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
