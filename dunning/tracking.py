"""Delivery tracking: the e-mail provider's webhooks move a reminder to delivered, bounced or complained.

Only the provider we send through listens: `/webhooks/anymail/<provider>/tracking/` answers for the
provider of EMAIL_BACKEND (`anymail.backends.postmark.EmailBackend` -> postmark) and only once
ANYMAIL["WEBHOOK_SECRET"] is set; every other provider, a non-anymail backend or a missing secret is
a 404 (`dunning.views.tracking_webhook`), and a missing secret stops a production start (system
check dunning.E001, `dunning.checks`). anymail checks the basic auth, normalises the payload (a body
it cannot parse is a 400) and sends its `tracking` signal; the receiver below (connected in
DunningAppConfig.ready) hands the event to `reminder_track_event`, which

- records every event once: providers deliver webhooks at least once, so a `TrackingEvent` with a
  unique (provider, event id) is written first and a second delivery of the same event changes nothing;
- finds the reminder by the provider's message id recorded on it when it was sent, or (the webhook
  can beat the sender's write-back) by the *signed* `reminder_token` metadata sent along with the
  e-mail (`dunning.tracking_token`). A bare reminder id proves nothing (ids are sequential) and is
  never trusted. Events for messages we don't know (another system on the same provider account, a
  deleted reminder, a forgery) are recorded and otherwise ignored, and the provider still gets its 200;
- never moves a reminder backwards: pending/sent < delivered < bounced = complained. A "delivered"
  arriving after "bounced" (providers don't keep order) leaves it bounced; a bounce after delivered
  (a late asynchronous bounce) does move it. Opened, clicked, deferred, ... are recorded only;
- writes an OrderEvent audit row ("reminder_bounced" / "reminder_complained") in the same transaction
  when a reminder bounces or the customer complains.

An exception here makes anymail answer 500, and the provider retries later: that is the right outcome
for a database hiccup, and the event id makes the retry harmless."""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import logging
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from orders.audit import order_events_log
from orders.models import OrderEvent

from .models import Reminder, TrackingEvent
from .services.reminders import WentOut, reminders_mark_sent
from .tracking_token import reminder_id_from_token

logger = logging.getLogger(__name__)

Status = Reminder.Status

# anymail's normalised event types (anymail.signals.EventType) that change a reminder's status.
STATUS_FOR_EVENT: dict[str, str] = {
    "delivered": Status.DELIVERED,
    "bounced": Status.BOUNCED,
    "rejected": Status.BOUNCED,  # the provider refused to send it (invalid, suppressed, blocked address)
    "failed": Status.BOUNCED,  # the provider could not send it after accepting it
    "complained": Status.COMPLAINED,
}

# How far along a reminder is; a tracking event only ever moves it to a higher rank.
RANK: dict[str, int] = {
    Status.PENDING: 0,
    Status.SENT: 1,
    Status.DELIVERED: 2,
    Status.BOUNCED: 3,
    Status.COMPLAINED: 3,
}

AUDIT_ACTION: dict[str, OrderEvent.Action] = {
    Status.BOUNCED: OrderEvent.Action.REMINDER_BOUNCED,
    Status.COMPLAINED: OrderEvent.Action.REMINDER_COMPLAINED,
}


def _locate(*, metadata: dict[str, Any] | None, message_id: str) -> Reminder | None:
    """The reminder an event is about, locked for update; None when it isn't one of ours."""
    locked = Reminder.objects.select_for_update()
    token = metadata.get("reminder_token") if isinstance(metadata, dict) else None
    reminder_id = reminder_id_from_token(token)
    if reminder_id is not None:
        reminder = locked.filter(pk=reminder_id).first()
        # The token travels with the e-mail (some providers put metadata into its headers): once the
        # reminder's own message id is known, an event about another message proves nothing.
        if reminder is not None and (not reminder.message_id or not message_id
                                     or reminder.message_id == message_id):
            return reminder
    if message_id:
        return locked.filter(message_id=message_id).order_by("-id").first()
    return None


def reminder_track_event(*, message_id: str | None, event_type: str, event_id: str,
                         timestamp: datetime.datetime | None, metadata: dict[str, Any] | None,
                         description: str | None, provider: str = "", now: datetime.datetime | None = None,
                         ) -> TrackingEvent | None:
    """Apply one tracking event to its reminder. Returns the recorded event, or None when this event
    (same provider and event id) was recorded before and so changes nothing now."""
    now = now or timezone.now()
    message_id = (message_id or "")[:255]
    event_type = (event_type or "unknown")[:40]
    with transaction.atomic():
        reminder = _locate(metadata=metadata, message_id=message_id)
        row = TrackingEvent(provider=provider[:40], event_id=event_id[:255], event_type=event_type,
                            reminder=reminder, message_id=message_id, occurred_at=timestamp, received_at=now,
                            description=description or "", metadata=metadata or {},
                            outcome=TrackingEvent.Outcome.UNKNOWN_MESSAGE)
        if reminder is not None:
            row.outcome = TrackingEvent.Outcome.UNCHANGED
            target = STATUS_FOR_EVENT.get(event_type)
            if target is not None and reminder.status == Status.FAILED:
                # We gave up on it and a retry may already be live for the same level: don't revive it.
                logger.warning("tracking: %s event for failed reminder %s ignored", event_type, reminder.pk)
            elif target is not None and RANK[target] > RANK[reminder.status]:
                row.outcome = TrackingEvent.Outcome.APPLIED
        try:
            with transaction.atomic():  # a savepoint: a duplicate must not spoil the outer transaction
                row.save(force_insert=True)
        except IntegrityError:
            if not TrackingEvent.objects.filter(provider=row.provider, event_id=row.event_id).exists():
                raise
            logger.info("tracking: duplicate %s event %s ignored", provider, event_id)
            return None
        if reminder is None:
            logger.info("tracking: %s event for unknown message %r ignored", event_type, message_id)
            return row
        if row.outcome == TrackingEvent.Outcome.APPLIED:
            old_status = reminder.status
            if old_status == Status.PENDING:
                # The provider had it after all (the send's outcome was unknown, or its write-back has
                # not happened yet): the reminder went out, so the order moves up as after a send.
                reminders_mark_sent([WentOut(reminder.pk, reminder.order_id, reminder.level)],
                                    sent_at=timestamp or now, now=now)
            Reminder.objects.filter(pk=reminder.pk).update(status=STATUS_FOR_EVENT[event_type], status_changed_at=now)
            reminder.refresh_from_db()
            action = AUDIT_ACTION.get(reminder.status)
            if action:
                order_events_log([(reminder.order_id, {
                    "reminder": reminder.pk, "level": reminder.level, "recipient": reminder.recipient,
                    "previous_status": old_status, "event_type": event_type, "provider": provider,
                    "event_id": event_id, "occurred_at": timestamp.isoformat() if timestamp else None,
                    "description": (description or "")[:1000],
                })], action=action, at=now)
    return row


# --- which provider's webhook listens ---------------------------------------------------------

ANYMAIL_BACKENDS = "anymail.backends."


@functools.cache
def tracking_view_class(provider: str) -> type | None:
    """anymail's tracking webhook view for `provider` (its backend module's name: "postmark",
    "amazon_ses"), or None when anymail has none for it (its test and console backends, ...)."""
    from anymail import urls  # the one list of anymail's webhook views, read once

    wanted = f"{provider}_tracking_webhook"
    for pattern in urls.urlpatterns:
        if pattern.name == wanted:
            return pattern.callback.view_class
    return None


def provider_names() -> list[str]:
    """The names anymail records tracking events under (its `esp_name`: "Postmark", "Amazon SES"),
    for every provider it has a tracking webhook for."""
    from anymail import urls

    return sorted({pattern.callback.view_class.esp_name for pattern in urls.urlpatterns
                   if pattern.name and pattern.name.endswith("_tracking_webhook")})


def tracking_provider() -> str | None:
    """The provider whose tracking webhook we listen to: the one EMAIL_BACKEND sends through
    (anymail.backends.postmark.EmailBackend -> "postmark"); None for any other backend."""
    module = settings.EMAIL_BACKEND.rpartition(".")[0]
    if not module.startswith(ANYMAIL_BACKENDS):
        return None
    provider = module.removeprefix(ANYMAIL_BACKENDS)
    return provider if tracking_view_class(provider) is not None else None


def webhook_secrets() -> list[str]:
    """The basic-auth credentials ("user:password") the provider must send, as anymail reads them
    (ANYMAIL["WEBHOOK_SECRET"] or ANYMAIL_WEBHOOK_SECRET: one string or a list, for a change of
    password); only well-formed ones count, so an empty list means the webhook is not secured."""
    from anymail.utils import get_anymail_setting

    value = get_anymail_setting("webhook_secret", default=None)
    values = [value] if isinstance(value, str) else value if isinstance(value, list | tuple) else []
    secrets = []
    for secret in values:
        user, colon, password = secret.partition(":") if isinstance(secret, str) else ("", "", "")
        if not (user and colon and password):
            return []  # one malformed entry: refuse rather than guess which ones were meant
        secrets.append(secret)
    return secrets


# --- the anymail signal receiver ---------------------------------------------------------------

def event_key(event) -> str:
    """The provider's event id, or (some providers send none, e.g. Postmark's Delivery) a stable
    digest of the event's payload: a redelivered webhook carries the same payload."""
    if getattr(event, "event_id", None):
        return str(event.event_id)
    raw = getattr(event, "esp_event", None)
    if isinstance(raw, dict | list):
        payload = json.dumps(raw, sort_keys=True, default=str)
    else:
        payload = "|".join(str(getattr(event, name, None))
                           for name in ("event_type", "message_id", "recipient", "timestamp"))
    return "sha256:" + hashlib.sha256(payload.encode()).hexdigest()


def on_tracking_event(sender, event, esp_name: str, **kwargs) -> None:
    """Receiver of anymail.signals.tracking (connected in DunningAppConfig.ready)."""
    description = "\n".join(part for part in (event.description, event.mta_response) if part)
    reminder_track_event(message_id=event.message_id, event_type=event.event_type, event_id=event_key(event),
                         timestamp=event.timestamp, metadata=event.metadata, description=description,
                         provider=esp_name)
