"""Delivery tracking through the real webhook endpoint, with Postmark's payloads (as in anymail's own
tests and Postmark's webhook docs): delivered, bounced, complained; duplicates, order, auth, strangers."""

import base64
import json
import uuid

import pytest
import requests
from django.test import Client

from dunning import services
from dunning.models import Reminder, TrackingEvent
from dunning.services.provider_http import DirectSession
from dunning.tracking import reminder_track_event
from dunning.tracking_token import reminder_id_from_token, reminder_token
from orders.models import OrderEvent
from tests.factories import OrderFactory, ReminderFactory, berlin

WEBHOOK = "/webhooks/anymail/postmark/tracking/"
SECRET = "user:pass"


def basic_auth(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


@pytest.fixture(autouse=True)
def postmark(settings):
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    # WEBHOOK_SECRET stays set: without it anymail warns (AnymailInsecureWebhookWarning) on every call.
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "x", "WEBHOOK_SECRET": SECRET}


@pytest.fixture
def reminder(db):
    return ReminderFactory(status=Reminder.Status.SENT, message_id=str(uuid.uuid4()),
                           sent_at=berlin(2026, 11, 26, 9, 0))


def post(client: Client, payload: dict, *, auth: str | None = SECRET):
    headers = {"HTTP_AUTHORIZATION": basic_auth(auth)} if auth is not None else {}
    return client.post(WEBHOOK, data=json.dumps(payload), content_type="application/json", **headers)


def metadata(reminder: Reminder) -> dict:
    # what dunning.services._build_message attaches; Postmark echoes it (values as strings)
    return {"reminder_token": reminder_token(reminder.pk), "order": reminder.order.number}


def delivery(reminder: Reminder, *, message_id: str | None = None, meta: dict | None = None) -> dict:
    return {
        "RecordType": "Delivery",
        "ServerID": 23,
        "MessageStream": "outbound",
        "MessageID": message_id or reminder.message_id,
        "Recipient": reminder.recipient,
        "Tag": "dunning",
        "DeliveredAt": "2026-11-26T09:00:04.2735393Z",
        "Details": "smtp;250 2.0.0 OK 1732611604 mx.example.com",
        "Metadata": metadata(reminder) if meta is None else meta,
    }


def bounce(reminder: Reminder, *, bounce_id: int = 4323372036, message_id: str | None = None) -> dict:
    return {
        "RecordType": "Bounce",
        "ID": bounce_id,
        "Type": "HardBounce",
        "TypeCode": 1,
        "Name": "Hard bounce",
        "Tag": "dunning",
        "MessageID": message_id or reminder.message_id,
        "Metadata": metadata(reminder),
        "ServerID": 23,
        "MessageStream": "outbound",
        "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": reminder.recipient,
        "From": "billing@webshop.example",
        "BouncedAt": "2026-11-26T09:00:07.3963933Z",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": True,
        "Subject": reminder.subject,
        "Content": "",
    }


def spam_complaint(reminder: Reminder) -> dict:
    return {
        "RecordType": "SpamComplaint",
        "ID": 4323372099,
        "Type": "SpamComplaint",
        "TypeCode": 512,
        "Name": "Spam complaint",
        "Tag": "dunning",
        "MessageID": reminder.message_id,
        "Metadata": metadata(reminder),
        "ServerID": 23,
        "MessageStream": "outbound",
        "Description": "The subscriber explicitly marked this message as spam.",
        "Details": "Test spam complaint details",
        "Email": reminder.recipient,
        "From": "billing@webshop.example",
        "BouncedAt": "2026-11-27T18:12:00Z",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": False,
        "Subject": reminder.subject,
    }


def open_event(reminder: Reminder) -> dict:
    return {
        "RecordType": "Open",
        "FirstOpen": True,
        "Client": {"Name": "Gmail", "Company": "Google", "Family": "Gmail"},
        "OS": {"Name": "unknown", "Company": "unknown", "Family": "unknown"},
        "Platform": "Unknown",
        "UserAgent": "Mozilla/5.0 (Windows NT 10.0; rv:120.0) Gecko Firefox/120.0",
        "ReadSeconds": 0,
        "Geo": {},
        "MessageID": reminder.message_id,
        "MessageStream": "outbound",
        "Metadata": metadata(reminder),
        "ReceivedAt": "2026-11-26T11:21:41.2493688Z",
        "Recipient": reminder.recipient,
        "Tag": "dunning",
    }


def status_of(reminder: Reminder) -> str:
    reminder.refresh_from_db()
    return reminder.status


# --- the status moves ---------------------------------------------------------------------------

def test_delivery_moves_sent_to_delivered(client, reminder):
    response = post(client, delivery(reminder))
    assert response.status_code == 200
    reminder.refresh_from_db()
    assert reminder.status == Reminder.Status.DELIVERED
    assert reminder.status_changed_at is not None
    event = TrackingEvent.objects.get()
    assert (event.provider, event.event_type, event.outcome) == ("Postmark", "delivered", "applied")
    assert event.reminder == reminder
    assert event.message_id == reminder.message_id
    assert event.event_id.startswith("sha256:")  # Postmark's Delivery has no ID of its own
    assert not OrderEvent.objects.exists()  # delivery is not worth an audit row


def test_bounce_moves_to_bounced_and_writes_the_audit_row(client, reminder):
    response = post(client, bounce(reminder))
    assert response.status_code == 200
    assert status_of(reminder) == Reminder.Status.BOUNCED
    event = TrackingEvent.objects.get()
    assert (event.event_id, event.event_type, event.outcome) == ("4323372036", "bounced", "applied")
    assert "unknown user, mailbox not found" in event.description
    assert "550 5.1.1" in event.description  # the remote server's answer, for staff
    audit = OrderEvent.objects.get()
    assert (audit.order_id, audit.action) == (reminder.order_id, "reminder_bounced")
    assert audit.details["reminder"] == reminder.pk
    assert audit.details["level"] == 1
    assert audit.details["previous_status"] == "sent"
    assert audit.details["recipient"] == reminder.recipient


def test_spam_complaint_moves_to_complained_and_writes_the_audit_row(client, reminder):
    post(client, delivery(reminder))
    response = post(client, spam_complaint(reminder))
    assert response.status_code == 200
    assert status_of(reminder) == Reminder.Status.COMPLAINED
    assert list(OrderEvent.objects.values_list("action", flat=True)) == ["reminder_complained"]


def test_bounce_after_delivered_moves_on(client, reminder):
    """A late asynchronous bounce (accepted first, bounced later) does change a delivered reminder."""
    post(client, delivery(reminder))
    assert status_of(reminder) == Reminder.Status.DELIVERED
    post(client, bounce(reminder))
    assert status_of(reminder) == Reminder.Status.BOUNCED
    assert OrderEvent.objects.filter(action="reminder_bounced").count() == 1


def test_delivered_after_bounced_does_not_move_back(client, reminder):
    """Providers don't keep order: a delivery event arriving after the bounce changes nothing."""
    post(client, bounce(reminder))
    changed_at = Reminder.objects.get(pk=reminder.pk).status_changed_at
    response = post(client, delivery(reminder))
    assert response.status_code == 200
    reminder.refresh_from_db()
    assert reminder.status == Reminder.Status.BOUNCED
    assert reminder.status_changed_at == changed_at
    late = TrackingEvent.objects.get(event_type="delivered")
    assert late.outcome == TrackingEvent.Outcome.UNCHANGED  # recorded all the same
    assert late.reminder == reminder


def test_opened_is_recorded_but_changes_nothing(client, reminder):
    assert post(client, open_event(reminder)).status_code == 200
    assert status_of(reminder) == Reminder.Status.SENT
    assert TrackingEvent.objects.get().event_type == "opened"
    assert TrackingEvent.objects.get().outcome == TrackingEvent.Outcome.UNCHANGED


# --- duplicates ---------------------------------------------------------------------------------

def test_the_same_bounce_posted_twice_is_recorded_once(client, reminder):
    assert post(client, bounce(reminder)).status_code == 200
    assert post(client, bounce(reminder)).status_code == 200  # the provider's retry: still a 200
    assert TrackingEvent.objects.count() == 1
    assert OrderEvent.objects.filter(action="reminder_bounced").count() == 1
    assert status_of(reminder) == Reminder.Status.BOUNCED


def test_the_same_delivery_posted_twice_is_recorded_once(client, reminder):
    """Postmark's Delivery carries no event id: the payload's digest stands in for it."""
    post(client, delivery(reminder))
    post(client, delivery(reminder))
    assert TrackingEvent.objects.count() == 1
    other = ReminderFactory(order=OrderFactory(), message_id=str(uuid.uuid4()))
    post(client, delivery(other))  # another message's delivery is another event
    assert TrackingEvent.objects.count() == 2


# --- bad input: auth, strangers -----------------------------------------------------------------

@pytest.mark.parametrize("auth", [None, "user:wrong", "someone:pass", ""], ids=["missing", "wrong-password",
                                                                               "wrong-user", "empty"])
def test_wrong_or_missing_basic_auth_is_refused_and_changes_nothing(client, reminder, auth):
    response = post(client, bounce(reminder), auth=auth)
    assert response.status_code in (400, 403)
    assert status_of(reminder) == Reminder.Status.SENT
    assert not TrackingEvent.objects.exists()
    assert not OrderEvent.objects.exists()


def test_unknown_message_id_is_answered_200_recorded_and_ignored(client, reminder):
    stranger = delivery(reminder, message_id=str(uuid.uuid4()), meta={})
    stranger_bounce = {**bounce(reminder, message_id=str(uuid.uuid4())), "Metadata": {}}
    assert post(client, stranger).status_code == 200
    assert post(client, stranger_bounce).status_code == 200
    assert status_of(reminder) == Reminder.Status.SENT
    assert not OrderEvent.objects.exists()
    assert set(TrackingEvent.objects.values_list("outcome", "reminder")) == {("unknown_message", None)}


def test_token_of_another_message_is_not_trusted(client, reminder):
    """A valid token of our reminder, but on another provider message than the one recorded for it
    (the token travels with the e-mail and may be copied): the reminder is left alone."""
    post(client, bounce(reminder, message_id=str(uuid.uuid4())))
    assert status_of(reminder) == Reminder.Status.SENT
    assert TrackingEvent.objects.get().outcome == TrackingEvent.Outcome.UNKNOWN_MESSAGE


def test_found_by_message_id_when_the_metadata_is_missing(client, reminder):
    post(client, {**bounce(reminder), "Metadata": {}})
    assert status_of(reminder) == Reminder.Status.BOUNCED


def test_malformed_metadata_falls_back_to_the_message_id(client, reminder):
    post(client, delivery(reminder, meta={"reminder_token": "not-a-token", "reminder_id": "not-a-number"}))
    assert status_of(reminder) == Reminder.Status.DELIVERED


def test_a_failed_reminder_is_not_revived(client, reminder):
    """We gave up on it (a retry may be live for the same level): a late bounce is recorded only."""
    Reminder.objects.filter(pk=reminder.pk).update(status=Reminder.Status.FAILED)
    post(client, bounce(reminder))
    assert status_of(reminder) == Reminder.Status.FAILED
    assert TrackingEvent.objects.get().outcome == TrackingEvent.Outcome.UNCHANGED
    assert not OrderEvent.objects.exists()


# --- the race with the sender ---------------------------------------------------------------------

class FakePostmark:
    """Stands in for Postmark's HTTP API (requests.Session.request): accepts each e-mail with a
    new MessageID and, like a fast real provider, may fire a webhook before the sender has even
    written down its outcome."""

    def __init__(self, on_send=None):
        self.sent: list[dict] = []
        self.on_send = on_send

    def install(self, monkeypatch) -> "FakePostmark":
        # requests' session, and the sending threads' one (which skips requests' machinery)
        for session_class in (requests.Session, DirectSession):
            monkeypatch.setattr(session_class, "request",
                                lambda session, method, url, **kwargs: self.request(method, url, **kwargs))
        return self

    def request(self, method, url, **kwargs):
        assert (method, url) == ("POST", "https://api.postmarkapp.com/email")
        body = json.loads(kwargs["data"])
        message_id = str(uuid.uuid4())
        self.sent.append({**body, "MessageID": message_id})
        if self.on_send:
            self.on_send(body, message_id)
        response = requests.Response()
        response.status_code = 200
        response.url = url
        response.headers["Content-Type"] = "application/json"
        response._content = json.dumps({"To": body["To"], "SubmittedAt": "2026-11-26T10:00:00Z",
                                         "MessageID": message_id, "ErrorCode": 0, "Message": "OK"}).encode()
        return response


def test_bounce_arriving_while_the_sender_is_still_busy_is_kept(config, assignments, now, monkeypatch, settings):
    """The bounce webhook reaches us before the send loop records "sent" (the reminder is still
    pending and has no message id yet): it is matched by the signed reminder_token metadata, and the
    sender's bookkeeping afterwards must not turn the bounced reminder back into "sent"."""
    order = OrderFactory(ordered_at=berlin(2026, 11, 5, 12))  # at level 1 on `now`
    webhook_client = Client()

    def bounce_at_once(body, message_id):
        reminder = Reminder.objects.get(pk=reminder_id_from_token(body["Metadata"]["reminder_token"]))
        assert reminder.status == Reminder.Status.PENDING and not reminder.message_id
        payload = {**bounce(reminder, message_id=message_id), "Metadata": body["Metadata"]}
        assert post(webhook_client, payload).status_code == 200

    fake = FakePostmark(on_send=bounce_at_once).install(monkeypatch)
    # the webhook is posted from inside the provider call: keep it in the test's thread (its database)
    settings.DUNNING_SEND_CONCURRENCY = 1
    outcome = services.reminders_send(order_ids=[order.id], level=1, trigger=Reminder.Trigger.MANUAL, now=now)

    assert outcome.sent == [order.id], (outcome.failed, outcome.skipped)
    reminder = Reminder.objects.get(order=order)
    assert fake.sent[0]["Metadata"] == {"reminder_token": reminder_token(reminder.pk), "order": order.number}
    assert reminder.message_id == fake.sent[0]["MessageID"]
    assert reminder.status == Reminder.Status.BOUNCED
    assert reminder.sent_at == now
    order.refresh_from_db()
    assert order.reminders_sent == 1  # it was sent: the level counts
    assert set(OrderEvent.objects.values_list("action", flat=True)) == {"reminder_sent", "reminder_bounced"}


def test_a_sent_reminder_is_found_by_the_provider_message_id(config, assignments, now, monkeypatch, client):
    order = OrderFactory(ordered_at=berlin(2026, 11, 5, 12))
    fake = FakePostmark().install(monkeypatch)
    services.reminders_send(order_ids=[order.id], level=1, trigger=Reminder.Trigger.MANUAL, now=now)
    reminder = Reminder.objects.get(order=order)
    assert reminder.status == Reminder.Status.SENT
    assert reminder.message_id == fake.sent[0]["MessageID"]
    post(client, delivery(reminder, meta={}))
    assert status_of(reminder) == Reminder.Status.DELIVERED


def test_delivered_event_settles_a_reminder_whose_outcome_was_unknown(db):
    """A read timeout left the reminder in flight; the provider's "delivered" proves it went out."""
    from orders.models import Order
    from tests.factories import OrderFactory, berlin

    order = OrderFactory(ordered_at=berlin(2026, 9, 1))
    reminder = Reminder.objects.create(order=order, level=1, trigger="automatic", recipient=order.customer_email,
                                       subject="s", body="b", status="pending", created_at=berlin(2026, 11, 26, 9))
    reminder_track_event(message_id="", event_type="delivered", event_id="ev-1", timestamp=berlin(2026, 11, 26, 9, 1),
                         metadata={"reminder_token": reminder_token(reminder.pk)}, description="",
                         provider="postmark")
    reminder.refresh_from_db()
    order = Order.objects.get(pk=order.pk)
    assert reminder.status == "delivered" and reminder.sent_at == berlin(2026, 11, 26, 9, 1)
    assert order.reminders_sent == 1 and order.last_reminder_at == berlin(2026, 11, 26, 9, 1)
