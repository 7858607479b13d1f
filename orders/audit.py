"""The one writer of the audit trail (`OrderEvent`). Every service that changes an order calls it in
the same transaction as the change, with an action declared in `OrderEvent.Action`."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any

from common.bulk import insert_values

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
    user_id = user.pk if user is not None else None
    rows = [(order_id, action.value, user_id, at, dict(details)) for order_id, details in entries]
    # COPY on PostgreSQL from 50 rows on, without a model instance per row (common/bulk.py)
    insert_values(OrderEvent, ["order_id", "action", "user_id", "at", "details"], rows)
    return len(rows)
