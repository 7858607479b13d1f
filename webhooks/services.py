"""Writing events in the caller's transaction (docs/rules/api-and-webhooks.md).

`events_emit` costs one query when no endpoint of the accounts wants the event, and three (the
endpoints, one INSERT of the events, one INSERT of the deliveries) otherwise, however many events:
the dunning engine calls it once per recorded batch. Delivering them is the worker's
(webhooks.delivery)."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from django.db import transaction

from .models import EventType, WebhookDelivery, WebhookEndpoint, WebhookEvent, new_event_id

logger = logging.getLogger(__name__)

Status = WebhookDelivery.Status


def endpoints_wanting(type: str, account_ids: Iterable[int]) -> dict[int, list[WebhookEndpoint]]:
    """The active endpoints of `account_ids` that want events of `type`, by sales account id (one
    query). A caller writing many sets of events in one go (the sender's write-backs) reads them
    once and passes them to `events_emit`."""
    type = EventType(type).value  # ValueError for an unknown type
    endpoints: dict[int, list[WebhookEndpoint]] = {}
    for endpoint in (WebhookEndpoint.objects.filter(sales_account_id__in=set(account_ids), is_active=True)
                     .select_related("sales_account").order_by("id")):
        if endpoint.wants(type):
            endpoints.setdefault(endpoint.sales_account_id, []).append(endpoint)
    return endpoints


def events_emit(type: str, entries: Iterable[tuple[int, Mapping[str, Any]]], *, now: datetime.datetime,
                endpoints: Mapping[int, list[WebhookEndpoint]] | None = None) -> int:
    """Write one event of `type` per (sales account id, data) of `entries`, with a delivery for each
    active endpoint of that account that wants it, in the caller's transaction. `data` gets the
    sales account's name. Returns the number of events written (events nobody subscribed to are not
    stored). A delivery task is queued once the transaction commits.

    `endpoints`: what `endpoints_wanting(type, ...)` returned for (at least) these accounts, read by
    the caller earlier; without it they are read here."""
    type = EventType(type).value  # ValueError for an unknown type
    entries = list(entries)
    if not entries:
        return 0
    if endpoints is None:
        endpoints = endpoints_wanting(type, {account_id for account_id, _ in entries})
    if not endpoints:
        return 0
    events, deliveries = [], []
    for account_id, data in entries:
        targets = endpoints.get(account_id)
        if not targets:
            continue
        event = WebhookEvent(id=new_event_id(), type=type, sales_account_id=account_id, created_at=now,
                             data={**data, "sales_account": targets[0].sales_account.name})
        events.append(event)
        deliveries += [WebhookDelivery(event_id=event.id, endpoint=endpoint, next_attempt_at=now)
                       for endpoint in targets]
    WebhookEvent.objects.bulk_create(events)
    WebhookDelivery.objects.bulk_create(deliveries)
    transaction.on_commit(_kick)
    return len(events)


def event_emit(type: str, data: Mapping[str, Any], *, sales_account_id: int, now: datetime.datetime) -> int:
    """One event (see `events_emit`)."""
    return events_emit(type, [(sales_account_id, data)], now=now)


def _kick() -> None:
    from .tasks import deliver_due  # the task module imports webhooks.delivery, not this one

    try:
        deliver_due.delay()
    except Exception:  # the broker is down: the beat sweep delivers later
        logger.warning("could not queue the webhook delivery; the periodic sweep will", exc_info=True)


def deliveries_redeliver(*, delivery_ids: Iterable[int], now: datetime.datetime) -> int:
    """Queue deliveries again (the admin's "redeliver"): pending, due now, attempts counted anew."""
    count = WebhookDelivery.objects.filter(id__in=list(delivery_ids)).update(
        status=Status.PENDING, attempts=0, next_attempt_at=now, delivered_at=None)
    transaction.on_commit(_kick)
    return count
