"""Delivering the outbox: the worker claims due deliveries under a short lease (so two sweeps never
send the same row at once), POSTs outside any transaction with the Standard Webhooks headers, and
writes the outcome back: 2xx delivered; anything else (an error status, a redirect, which is never
followed, a timeout, a refused address) is retried on the schedule below, then failed.

The connection itself resolves the receiver's host, checks every address and connects to a checked
one (`_PinnedConnection`), so the address called is the address checked: a name that answers with
a public address for the check and a private one for the connection (DNS rebinding) is refused
before a single packet goes to the private address."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import time
from typing import Any

import requests
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError

from .models import SECRET_PREFIX, WebhookDelivery, WebhookEndpoint, WebhookEvent
from .urls_check import AddressRefused, public_address, url_problem

# Pauses after attempt 1, 2, ... (the Standard Webhooks schedule): the last attempt is about 27.5
# hours after the first; then the delivery is failed.
BACKOFF = (
    datetime.timedelta(seconds=5), datetime.timedelta(minutes=5), datetime.timedelta(minutes=30),
    datetime.timedelta(hours=2), datetime.timedelta(hours=5), datetime.timedelta(hours=10),
    datetime.timedelta(hours=10),
)
MAX_ATTEMPTS = len(BACKOFF) + 1
LEASE = datetime.timedelta(seconds=60)  # a claimed delivery is not claimed again for this long
SWEEP_LIMIT = 200

Status = WebhookDelivery.Status


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """`v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")), key = the secret after `whsec_`."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def request_parts(event: WebhookEvent, endpoint: WebhookEndpoint, *, now: datetime.datetime) -> tuple[dict, str]:
    body = json.dumps(event.payload(), separators=(",", ":"), ensure_ascii=False)
    timestamp = int(now.timestamp())
    headers = {
        "content-type": "application/json",
        "user-agent": "Mahnwesen-Webhooks/1",
        "webhook-id": event.id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(endpoint.secret, event.id, timestamp, body),
    }
    return headers, body


class _Refused(NewConnectionError):
    """The receiver's host resolved to an address that may not be called (urls_check)."""

    def __init__(self, conn, refusal: str) -> None:
        super().__init__(conn, refusal)
        self.refusal = refusal


class _PinnedConnection:
    """Resolve the host once, check every address, connect to a checked one (mixed into urllib3's
    connections; TLS still verifies the certificate against the host name)."""

    def _new_conn(self):
        if getattr(settings, "WEBHOOK_ALLOW_PRIVATE", False):
            return super()._new_conn()
        name = self._dns_host
        try:
            address = public_address(name, self.port)
        except AddressRefused as exc:
            raise _Refused(self, str(exc)) from None
        self._dns_host = address
        try:
            return super()._new_conn()
        finally:
            self._dns_host = name


class _PinnedHTTPConnection(_PinnedConnection, HTTPConnection):
    pass


class _PinnedHTTPSConnection(_PinnedConnection, HTTPSConnection):
    pass


class _PinnedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _PinnedHTTPConnection


class _PinnedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _PinnedHTTPSConnection


class _PinnedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _PinnedHTTPPool, "https": _PinnedHTTPSPool}


_session = requests.Session()
_session.trust_env = False  # no proxies or .netrc from the environment
_session.mount("http://", _PinnedAdapter())
_session.mount("https://", _PinnedAdapter())


def _refusal(exc: requests.ConnectionError) -> str | None:
    """The refusal inside a connection error raised by `_PinnedConnection`, or None."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return reason.refusal if isinstance(reason, _Refused) else None


def _post(url: str, headers: dict, body: str) -> tuple[int | None, str]:
    """(status code, error). No redirects followed; short timeouts."""
    problem = url_problem(url)
    if problem:
        return None, problem
    timeout = float(getattr(settings, "WEBHOOK_TIMEOUT_SECONDS", 5))
    try:
        response = _session.post(url, data=body.encode(), headers=headers, timeout=(min(timeout, 3.0), timeout),
                                 allow_redirects=False, stream=True)
        response.close()  # the body is not read: a huge answer costs nothing
    except requests.Timeout:
        return None, "timed out"
    except requests.ConnectionError as exc:
        return None, _refusal(exc) or f"connection failed: {type(exc).__name__}"
    except requests.RequestException as exc:
        return None, f"connection failed: {type(exc).__name__}"
    if 300 <= response.status_code < 400:
        return response.status_code, "redirect not followed"
    return response.status_code, "" if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"


def _claim(now: datetime.datetime, limit: int) -> list[WebhookDelivery]:
    with transaction.atomic():
        due = list(WebhookDelivery.objects.filter(status=Status.PENDING, next_attempt_at__lte=now)
                   .select_for_update(skip_locked=True, of=("self",)).order_by("next_attempt_at", "id")
                   .values_list("id", flat=True)[:limit])
        WebhookDelivery.objects.filter(id__in=due).update(next_attempt_at=now + LEASE)
    return list(WebhookDelivery.objects.filter(id__in=due).select_related("event", "endpoint").order_by("id"))


def delivery_attempt(delivery: WebhookDelivery, *, now: datetime.datetime) -> bool:
    """POST once and record the outcome; True when delivered."""
    endpoint = delivery.endpoint
    attempts = delivery.attempts + 1
    if not endpoint.is_active:
        code, error, duration = None, "endpoint deactivated", 0
    else:
        headers, body = request_parts(delivery.event, endpoint, now=now)
        started = time.monotonic()
        code, error = _post(endpoint.url, headers, body)
        duration = int((time.monotonic() - started) * 1000)
    values: dict[str, Any] = {"attempts": attempts, "last_attempt_at": now, "last_status_code": code,
                              "last_duration_ms": duration, "last_error": error[:300]}
    if not error:
        values.update(status=Status.DELIVERED, delivered_at=now, next_attempt_at=None)
    elif attempts >= MAX_ATTEMPTS or not endpoint.is_active:
        values.update(status=Status.FAILED, next_attempt_at=None)
    else:
        values.update(next_attempt_at=now + BACKOFF[attempts - 1])
    WebhookDelivery.objects.filter(id=delivery.id, status=Status.PENDING).update(**values)
    return not error


def deliveries_send_due(*, now: datetime.datetime | None = None, limit: int = SWEEP_LIMIT) -> tuple[int, int]:
    """Send the deliveries due at `now`; returns (delivered, not delivered)."""
    now = now or timezone.now()
    ok = bad = 0
    for delivery in _claim(now, limit):
        if delivery_attempt(delivery, now=now):
            ok += 1
        else:
            bad += 1
    return ok, bad


