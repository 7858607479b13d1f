"""The e-mail provider: building a reminder's message, sending it with retries, and telling from an
error whether trying again can help.

Anymail does not retry. Connection errors, 429 and 5xx are retried here with backoff; other 4xx
fail at once. A read timeout is ambiguous (the provider may have sent it): such a reminder is left
in flight and never sent again automatically (docs/rules/sending.md)."""

from __future__ import annotations

import os
import smtplib
import socket
import time
from email.mime.image import MIMEImage

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.mail.message import make_msgid

from orders.models import Order

from ..letters import letter_filename
from ..templating import RenderedEmail
from ..tracking_token import reminder_token

TRANSIENT, PERMANENT, AMBIGUOUS = "transient", "permanent", "ambiguous"
SENT = "sent"
THROTTLED = "throttled"  # 429 with Retry-After: not sent; wait (everyone) and hand it over again
MAX_RETRY_AFTER = 300.0


def retry_after(exc: BaseException) -> float | None:
    """The seconds of a 429's `Retry-After` header (delta-seconds form), else None."""
    response = getattr(exc, "response", None)
    if getattr(exc, "status_code", None) != 429 or response is None:
        return None
    try:
        value = float(response.headers.get("Retry-After", ""))
    except (TypeError, ValueError):
        return None
    return min(max(value, 0.0), MAX_RETRY_AFTER)


def classify_send_error(exc: BaseException) -> str:
    """transient: nothing was delivered and trying again may work (connection refused, 429, 5xx);
    permanent: trying again will not help (4xx, invalid address); ambiguous: the request may have
    reached the provider (read timeout), so it must not be sent again blindly."""
    from anymail.exceptions import AnymailError, AnymailInvalidAddress, AnymailRecipientsRefused

    if isinstance(exc, AnymailRecipientsRefused | AnymailInvalidAddress):
        return PERMANENT
    if isinstance(exc, AnymailError):
        status = getattr(exc, "status_code", None)
        if status is not None:
            return TRANSIENT if status == 429 or status >= 500 else PERMANENT
        cause = exc.__cause__
        if cause is not None:
            return classify_send_error(cause)
        return PERMANENT
    try:
        import requests

        if isinstance(exc, requests.exceptions.ConnectTimeout | requests.exceptions.ConnectionError):
            return TRANSIENT
        if isinstance(exc, requests.exceptions.Timeout):
            return AMBIGUOUS
    except ImportError:  # pragma: no cover - requests comes with anymail
        pass
    if isinstance(exc, smtplib.SMTPRecipientsRefused | smtplib.SMTPSenderRefused):
        return PERMANENT
    if isinstance(exc, smtplib.SMTPResponseException):
        return TRANSIENT if 400 <= exc.smtp_code < 500 else PERMANENT
    if isinstance(exc, smtplib.SMTPServerDisconnected | ConnectionError | socket.gaierror):
        return TRANSIENT
    if isinstance(exc, TimeoutError | socket.timeout):
        return AMBIGUOUS
    return PERMANENT


def error_text(exc: BaseException) -> str:
    """`Type: message`, at most 2,000 characters, for a reminder's or a run's error field."""
    try:
        text = str(exc)
    except Exception:  # some providers' exceptions fail to describe themselves
        text = repr(exc.args)
    return f"{type(exc).__name__}: {text}"[:2000]


def build_message(order: Order, rendered: RenderedEmail, *, level: int, reminder_id: int,
                  letter_pdf: bytes | None = None) -> EmailMultiAlternatives:
    """The e-mail of one reminder: from the account's sender (reply-to its reply address) to the
    customer, with the reminder's signed id as metadata that the provider's tracking webhooks echo.
    The HTML part's inline images (the payment QR code) go along as related parts with their
    Content-ID; `letter_pdf` (assignments with `attach_pdf`) as an attachment."""
    account = order.sales_account
    domain = account.sender_email.rpartition("@")[2] or "localhost"
    msg = EmailMultiAlternatives(
        subject=rendered.subject,
        body=rendered.body,
        from_email=account.sender_email,
        to=[order.customer_email],
        reply_to=[account.reply_to_email] if account.reply_to_email else None,
        headers={"Message-ID": make_msgid("reminder", domain=domain)},
    )
    if rendered.html_body:
        msg.attach_alternative(rendered.html_body, "text/html")
        for cid, png in rendered.inline_images.items():
            image = MIMEImage(png, "png")
            image.add_header("Content-ID", f"<{cid}>")
            image.add_header("Content-Disposition", "inline", filename=f"{cid}.png")
            msg.attach(image)
        if rendered.inline_images and letter_pdf is None:
            msg.mixed_subtype = "related"  # with an attachment too the parts stay "mixed"
    if letter_pdf is not None:
        msg.attach(letter_filename(order.number, level), letter_pdf, "application/pdf")
    # anymail: sent along to the provider, echoed back by its tracking webhooks
    msg.metadata = {"reminder_token": reminder_token(reminder_id), "order": order.number}
    msg.tags = [f"dunning-level-{level}"]  # one tag: Postmark refuses more than one
    return msg


def provider_connection():
    """An open connection of the configured e-mail backend for one sending thread.

    An HTTP provider's backend (anymail's requests-based ones) gets its `requests` session settled
    once: the proxies, CA bundle and .netrc credentials the environment gives for the provider's
    API address are read now and the session stops looking them up on every call (requests'
    `trust_env` reads the proxy variables and stats ~/.netrc per request: a tenth of a sending
    thread's CPU per message, measured). Same outcome, read once per connection. Its plain calls
    then skip requests' per-call machinery (`provider_http.DirectSession`)."""
    from django.core.mail import get_connection

    connection = get_connection()
    connection.open()
    session = getattr(connection, "session", None)
    api_url = getattr(connection, "api_url", None)
    if session is not None and api_url and getattr(session, "trust_env", False):
        import requests.utils

        session.proxies.update(requests.utils.get_environ_proxies(api_url, no_proxy=session.proxies.get("no_proxy")))
        if session.verify is True:
            bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            if bundle:
                session.verify = bundle
        if session.auth is None:
            session.auth = requests.utils.get_netrc_auth(api_url)
        session.trust_env = False
        from .provider_http import DirectSession

        connection.session = DirectSession(session)
    return connection


def send_message(message: EmailMultiAlternatives, connection, *,
                 throttle: bool = False) -> tuple[str, str, str]:
    """Send with retries and backoff on transient errors. Returns (SENT or an error class, the
    provider's message id, the error text). With `throttle`, a 429 carrying `Retry-After` returns
    (THROTTLED, "", the seconds) at once instead of spending an attempt: the caller pauses the
    shared rate limit and hands the message over again."""
    attempts = max(1, settings.DUNNING_SEND_RETRIES)
    for attempt in range(1, attempts + 1):
        try:
            message.connection = connection
            message.send()
        except Exception as exc:
            wait = retry_after(exc) if throttle else None
            if wait is not None:
                return THROTTLED, "", repr(wait)
            kind = classify_send_error(exc)
            if kind == TRANSIENT and attempt < attempts:
                time.sleep(settings.DUNNING_RETRY_BACKOFF_SECONDS * 2 ** (attempt - 1))
                continue
            return kind, "", error_text(exc)
        status = getattr(message, "anymail_status", None)
        message_id = (getattr(status, "message_id", None) if status else None) or message.extra_headers.get(
            "Message-ID", "")
        return SENT, str(message_id)[:255], ""
    raise AssertionError("unreachable")  # pragma: no cover
