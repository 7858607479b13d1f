"""The e-mail provider's tracking webhook: `/webhooks/anymail/<provider>/tracking/`.

One route for all providers, decided per request (so settings changes need no URL reload): it
answers only for the provider EMAIL_BACKEND sends through, and only with a webhook secret set;
anything else (another provider, an unknown name, a non-anymail backend, no secret) is a 404, as if
nothing were mounted. Nothing else of anymail's URLs (its inbound webhooks) is mounted.

The request then goes to anymail's own view for that provider (basic auth, the provider's
signature, parsing, the `tracking` signal; see dunning.tracking), with one change: a body it cannot
parse, or whose fields have types no provider sends, is a 400 instead of anymail's 500. A 500 tells
the provider to retry, which is right for our own failures (the database away) and stays so;
parsing needs no database, so an exception there is the body's fault. Network errors of providers
whose validation calls out (Amazon SNS, on subscription) are left as they are: retry."""

from __future__ import annotations

import datetime
import functools
import logging

from anymail.exceptions import AnymailConfigurationError, AnymailWebhookValidationFailure
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import BadRequest
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from .tracking import tracking_provider, tracking_view_class, webhook_secrets

logger = logging.getLogger(__name__)

# What a body the parser chokes on raises: json and type errors, missing keys, nesting too deep for
# the json module (RecursionError), an inbound payload at the tracking URL (AnymailConfigurationError).
# Not an ImportError (a missing package is ours).
PARSE_ERRORS = (ValueError, TypeError, LookupError, AttributeError, RecursionError, AnymailConfigurationError)
# Providers' payloads nest a few levels; far deeper ones would only trip our own json encoding later.
MAX_DEPTH = 32


def _is_parse_error(exc: BaseException | None) -> bool:
    while exc is not None:  # anymail wraps some (Amazon SES: AnymailAPIError from a ValueError)
        if isinstance(exc, OSError | ImportError):
            return False
        if isinstance(exc, PARSE_ERRORS):
            return True
        exc = exc.__cause__
    return False


def _has_nul(value) -> bool:
    """PostgreSQL stores no NUL character, neither in text nor in jsonb (keys included)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(item) for item in value)
    return False


def _too_deep(value) -> bool:
    stack = [(value, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list | tuple):
            if depth > MAX_DEPTH:
                return True
            stack.extend((item, depth + 1) for item in (value.values() if isinstance(value, dict) else value))
    return False


def _malformed_field(event) -> str | None:
    """The first field of a parsed event whose type no provider sends, or None."""
    for name in ("esp_event", "metadata"):
        if _too_deep(getattr(event, name, None)):
            return name
    for name in ("message_id", "description", "mta_response"):
        value = getattr(event, name, None)
        if value is not None and not isinstance(value, str):
            return name
    if not isinstance(getattr(event, "event_id", None), str | int | None):
        return "event_id"
    if not isinstance(event.event_type, str):
        return "event_type"
    if not isinstance(event.timestamp, datetime.datetime | None):
        return "timestamp"
    if not isinstance(event.metadata, dict | None):
        return "metadata"
    for name in ("message_id", "event_id", "description", "mta_response", "metadata"):
        value = getattr(event, name, None)
        if value is not None and _has_nul(value):
            return name
    return None


class MalformedBodyIs400:
    """Mixed in before anymail's tracking view of the configured provider."""

    def run_validators(self, request: HttpRequest) -> None:
        try:
            super().run_validators(request)
        except AnymailWebhookValidationFailure:
            raise  # anymail's own 400 (wrong basic auth or signature)
        except Exception as exc:
            if not _is_parse_error(exc):
                raise
            logger.warning("tracking webhook: unreadable %s body (%s)", self.esp_name, type(exc).__name__)
            raise BadRequest("Malformed webhook body") from exc

    def parse_events(self, request: HttpRequest) -> list:
        try:
            events = list(super().parse_events(request))  # all parsed before any is applied
        except Exception as exc:
            if not _is_parse_error(exc):
                raise
            logger.warning("tracking webhook: unreadable %s body (%s)", self.esp_name, type(exc).__name__)
            raise BadRequest("Malformed webhook body") from exc
        for event in events:
            field = _malformed_field(event)
            if field is not None:
                logger.warning("tracking webhook: %s event with a malformed %s", self.esp_name, field)
                raise BadRequest(f"Malformed webhook body: {field}")
        return events


@functools.cache
def _guarded_view(view_class: type):
    guarded = type(f"Guarded{view_class.__name__}", (MalformedBodyIs400, view_class), {})
    return guarded.as_view()


@csrf_exempt
@login_not_required
def tracking_webhook(request: HttpRequest, provider: str) -> HttpResponse:
    if provider != tracking_provider():
        raise Http404("No tracking webhook for this provider")
    if not webhook_secrets():
        # Unsecured, anyone could post events: not listening (and a production start is refused).
        logger.warning("tracking webhook for %s refused: ANYMAIL WEBHOOK_SECRET is not set", provider)
        raise Http404("No tracking webhook for this provider")
    return _guarded_view(tracking_view_class(provider))(request)
