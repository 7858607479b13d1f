"""An instant e-mail provider for benchmarks: anymail's test backend without its outbox (the full
anymail send path, payload included; nothing kept). `EMAIL_BACKEND=bench_instant.Instant` with
scripts/ on the path."""

import itertools

from anymail.backends.test import EmailBackend
from anymail.message import AnymailRecipientStatus

_counter = itertools.count(1)


class Instant(EmailBackend):
    def post_to_esp(self, payload, message):
        payload.get_params()
        return {"recipient_status": {email: AnymailRecipientStatus(message_id=f"bench-{next(_counter)}", status="sent")
                                     for email in payload.recipient_emails}}
