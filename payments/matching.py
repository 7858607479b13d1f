"""Which order a payment is for: the order-number rule of docs/rules/payments.md.

An order number counts when it appears as a whole token of the remittance texts: not inside a
longer run of letters or digits ("A100001" is found in "Best. A100001, danke" and in
"RE-A100001", not in "XA100001" or "A1000012"). Comparison ignores case (banks upper-case texts).
A payment is matched when exactly one order number of its texts belongs to an open order, exactly
one open order has that number (numbers are unique per sales account only), and the currencies
agree. Everything else stays unmatched for staff: no number, an unknown number, a number of
several open orders, several numbers (two orders in one transfer), another currency.

The candidates of a text are its substrings that start and end at a letter/digit boundary and do
not span whitespace, up to 64 characters: for "RE-2026/A100001" that is RE, RE-2026, ...,
A100001. They are looked up in one query per batch against the partial index on UPPER(number)
of open orders, so a batch of 2,000 payments costs the same few queries at 1,000 or 1,000,000
orders."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.db.models.functions import Upper

from common.iterables import chunked
from orders.models import OPEN, Order

MAX_NUMBER = 64
_WORD = re.compile(r"\S+")
_ALNUM = re.compile(r"[0-9A-Za-z\u00C0-\u024F]+")
LOOKUP_CHUNK = 5000


def candidates(text: str) -> set[str]:
    """Every substring that could be a whole-token order number (upper-cased)."""
    found: set[str] = set()
    for word in _WORD.finditer(text.upper()):
        w = word.group()
        runs = [(m.start(), m.end()) for m in _ALNUM.finditer(w)]
        for i, (start, _end) in enumerate(runs):
            for _start, end in runs[i:]:
                if end - start > MAX_NUMBER:
                    break
                found.add(w[start:end])
    return found


@dataclass(frozen=True)
class OpenOrder:
    id: int
    number: str
    currency: str
    total: Decimal
    tolerance: Decimal


def open_orders_by_number(numbers: Iterable[str], *, lock: bool = False) -> dict[str, list[OpenOrder]]:
    """The open orders whose upper-cased number is one of `numbers` (one query per 5,000)."""
    found: dict[str, list[OpenOrder]] = defaultdict(list)
    for chunk in chunked(sorted(set(numbers)), LOOKUP_CHUNK):
        qs = (Order.objects.filter(OPEN).annotate(number_upper=Upper("number"))
              .filter(number_upper__in=chunk).order_by("id"))
        if lock:
            qs = qs.select_for_update(of=("self",))
        for row in qs.values_list("id", "number", "currency", "total", "sales_account__payment_tolerance",
                                  "number_upper"):
            found[row[5]].append(OpenOrder(*row[:5]))
    return found


def match(reference: str, currency: str, orders: dict[str, list[OpenOrder]]) -> OpenOrder | None:
    """The one open order `reference` names, in `currency`; None when unmatched."""
    hits = [orders[c] for c in candidates(reference) if c in orders]
    if len(hits) != 1 or len(hits[0]) != 1:
        return None
    order = hits[0][0]
    return order if order.currency == currency else None
