"""The signed reminder id each reminder e-mail carries in the provider's metadata (`reminder_token`),
so that a tracking webhook can name the reminder before the provider's message id is recorded on it
(a fast provider's bounce can beat the sender's write-back).

A bare reminder id is no proof: ids are sequential, and anyone who can reach the webhook could name
any reminder with one. The token is `"<id>.<hmac>"`, the HMAC-SHA256 of the id under a key derived
from SECRET_KEY (`salted_hmac` with a salt of its own, so it signs nothing else); only this
installation can make one. Reminders sent before a key rotation still verify while the old key is
listed in SECRET_KEY_FALLBACKS.

It lives apart from `dunning.tracking` because sending (`dunning.services`) puts it into each e-mail
and tracking reads it back: tracking already depends on the services, so the token sits below both.
64 hex characters keep it within the providers' metadata limits (Postmark: 80 characters a value)
and their allowed characters."""

from __future__ import annotations

import re

from django.conf import settings
from django.utils.crypto import constant_time_compare, salted_hmac

KEY_SALT = "dunning.tracking_token.reminder_token"
TOKEN_RE = re.compile(r"([1-9][0-9]{0,18})\.([0-9a-f]{64})", re.ASCII)


def _signature(reminder_id: int, secret: str | bytes) -> str:
    return salted_hmac(KEY_SALT, str(reminder_id), secret=secret, algorithm="sha256").hexdigest()


def reminder_token(reminder_id: int) -> str:
    """The token to send along with reminder `reminder_id`."""
    reminder_id = int(reminder_id)
    return f"{reminder_id}.{_signature(reminder_id, settings.SECRET_KEY)}"


def reminder_id_from_token(token: object) -> int | None:
    """The reminder id a token names, or None unless it is a token this installation made (anything
    else: missing, not a string, malformed, a changed id or signature, another installation's key)."""
    if not isinstance(token, str):
        return None
    match = TOKEN_RE.fullmatch(token)
    if match is None:
        return None
    reminder_id = int(match[1])
    for secret in [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]:
        if constant_time_compare(match[2], _signature(reminder_id, secret)):
            return reminder_id
    return None
