"""The one writer of the audit trail (`OrderEvent`). Every service that changes an order calls it in
the same transaction as the change, with an action declared in `OrderEvent.Action`."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any

from common.bulk import insert_rows

from .models import OrderEvent


def order_events_log(
    entries: Iterable[tuple[int, Mapping[str, Any]]],
    *,
    action: OrderEvent.Action | str,
    at: datetime.datetime,
    user=None,
) -> int:
    """Write one event per (order id, details) of `entries`, all with `action` at `at` by `user`
    (None: the system). One statement for all of them; returns how many were written."""
    action = OrderEvent.Action(action)  # ValueError for an undeclared action
    rows = [OrderEvent(order_id=order_id, action=action, user=user, at=at, details=dict(details))
            for order_id, details in entries]
    insert_rows(OrderEvent, rows, pks=False)  # COPY on PostgreSQL from 50 rows on (common/bulk.py)
    return len(rows)
