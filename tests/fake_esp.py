"""A scripted e-mail provider for tests: anymail's test backend (records to mail.outbox, gives
message ids) plus a script of failures, to simulate what real providers do."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import requests
from anymail.backends.test import EmailBackend as AnymailTestBackend
from anymail.exceptions import AnymailRequestsAPIError
from django.core import mail

_lock = threading.Lock()


def http_error(status: int) -> Exception:
    """What anymail raises when the provider answers with an HTTP error status."""
    response = requests.Response()
    response.status_code = status
    response.reason = {429: "Too Many Requests", 400: "Bad Request", 422: "Unprocessable Entity"}.get(
        status, "Server Error")
    response._content = b'{"message": "simulated"}'
    return AnymailRequestsAPIError(f"provider answered {status}", status_code=status, response=response)


def wrapped(exc: Exception) -> Exception:
    """How anymail's requests-based backends report a network problem."""
    try:
        raise AnymailRequestsAPIError("Error posting to https://api.example/send") from exc
    except AnymailRequestsAPIError as err:
        return err


def connection_refused() -> Exception:
    return wrapped(requests.exceptions.ConnectionError("connection refused"))


def read_timeout() -> Exception:
    return wrapped(requests.exceptions.ReadTimeout("read timed out"))


class ScriptedBackend(AnymailTestBackend):
    """`ScriptedBackend.script` decides per call: a callable(message) returning None (deliver) or
    an exception to raise. `calls` counts every attempt, delivered or not."""

    script: Callable | None = None
    calls: int = 0
    delay: float = 0.0
    crash_after_send: Callable | None = None

    def post_to_esp(self, payload, message):
        with _lock:
            type(self).calls += 1
        if self.delay:
            time.sleep(self.delay)
        if type(self).script is not None:
            exc = type(self).script(message)
            if exc is not None:
                raise exc
        with _lock:
            if not hasattr(mail, "outbox"):
                mail.outbox = []
            response = super().post_to_esp(payload, message)
        if type(self).crash_after_send is not None:
            type(self).crash_after_send(message)
        return response

    @classmethod
    def reset(cls) -> None:
        cls.script = None
        cls.calls = 0
        cls.delay = 0.0
        cls.crash_after_send = None


class AppendLogBackend(AnymailTestBackend):
    """For tests across processes: every accepted message is appended (and fsynced) as one line
    "recipient level" to the file named by $FAKE_ESP_LOG, after $FAKE_ESP_DELAY seconds. What is
    in the file was sent, whatever happens to the process afterwards."""

    def post_to_esp(self, payload, message):
        import os

        time.sleep(float(os.environ.get("FAKE_ESP_DELAY", "0")))
        with open(os.environ["FAKE_ESP_LOG"], "a") as log:
            log.write(f"{message.to[0]} {message.tags[-1]}\n")
            log.flush()
            os.fsync(log.fileno())
        from anymail.message import AnymailRecipientStatus

        return {"recipient_status": {email: AnymailRecipientStatus(message_id=f"log-{time.time_ns()}", status="sent")
                                     for email in payload.recipient_emails}}
