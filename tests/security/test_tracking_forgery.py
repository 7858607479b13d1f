"""Forged delivery webhooks: what a stranger can do with the provider's tracking endpoint
(`/webhooks/anymail/<provider>/tracking/`), through the real endpoint with the test client.

The attacks, as an outside probe found them with the shipped defaults (no webhook secret):
a bounce carrying nothing but `Metadata.reminder_id` (a sequential number) marks a sent reminder
bounced, so its order never gets another reminder; a "delivered" for an in-flight reminder moves
the order up a level; every provider anymail knows is mounted, the unconfigured ones answer 500;
a malformed body answers 500."""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import uuid

import pytest
from django.conf import settings as django_settings
from django.core import checks
from django.test import Client

from dunning import services
from dunning.models import Reminder, TrackingEvent
from dunning.tracking_token import reminder_id_from_token, reminder_token
from orders.models import Order, OrderEvent
from tests.factories import OrderFactory, ReminderFactory, berlin

SECRET = "tracking:a-long-random-password"
MAILGUN_SIGNING_KEY = "mailgun-signing-key"
# Every provider anymail 15 has a tracking webhook for, besides Postmark (configured in these tests)
OTHER_PROVIDERS = ["amazon_ses", "brevo", "mailersend", "mailgun", "mailjet", "mailtrap", "mandrill", "postal",
                   "resend", "sendgrid", "sendinblue", "sparkpost", "unisender_go"]


def url(provider: str = "postmark") -> str:
    return f"/webhooks/anymail/{provider}/tracking/"


def basic_auth(credentials: str) -> dict:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(credentials.encode()).decode()}


@pytest.fixture
def client():
    """A 500 is an answer to look at here, not an exception in the test."""
    return Client(raise_request_exception=False)


@pytest.fixture
def shipped_defaults(settings):
    """Postmark as `.env.example` shows it: the server token set, ANYMAIL_WEBHOOK_SECRET commented out."""
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "x"}


@pytest.fixture
def postmark(settings):
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "x", "WEBHOOK_SECRET": SECRET}


@pytest.fixture
def mailgun(settings):
    settings.EMAIL_BACKEND = "anymail.backends.mailgun.EmailBackend"
    settings.ANYMAIL = {"MAILGUN_API_KEY": "key", "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_SIGNING_KEY,
                        "WEBHOOK_SECRET": SECRET}


@pytest.fixture
def sent(db):
    """A reminder that went out: the provider's message id is recorded on it."""
    return ReminderFactory(status=Reminder.Status.SENT, message_id=str(uuid.uuid4()),
                           sent_at=berlin(2026, 11, 26, 9, 0))


@pytest.fixture
def in_flight(db):
    """A reminder claimed and handed to the provider, its outcome not written back yet (no message id)."""
    order = OrderFactory(ordered_at=berlin(2026, 10, 1, 12))
    return ReminderFactory(order=order, status=Reminder.Status.PENDING, message_id="")


def post(client: Client, payload, *, provider: str = "postmark", auth: str | None = SECRET,
         content_type: str = "application/json"):
    body = payload if isinstance(payload, bytes | str) else json.dumps(payload)
    headers = basic_auth(auth) if auth is not None else {}
    return client.post(url(provider), data=body, content_type=content_type, **headers)


def postmark_bounce(*, metadata: dict, message_id: str | None = None, bounce_id: int = 4323372036) -> dict:
    payload = {
        "RecordType": "Bounce", "ID": bounce_id, "Type": "HardBounce", "TypeCode": 1, "Name": "Hard bounce",
        "Tag": "dunning-level-1", "Metadata": metadata, "ServerID": 23, "MessageStream": "outbound",
        "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": "kunde@example.com", "From": "billing@webshop.example", "BouncedAt": "2026-11-26T09:00:07Z",
        "DumpAvailable": True, "Inactive": True, "CanActivate": True, "Subject": "Zahlungserinnerung",
    }
    if message_id is not None:
        payload["MessageID"] = message_id
    return payload


def postmark_delivery(*, metadata: dict, message_id: str) -> dict:
    return {
        "RecordType": "Delivery", "ServerID": 23, "MessageStream": "outbound", "MessageID": message_id,
        "Recipient": "kunde@example.com", "Tag": "dunning-level-1", "DeliveredAt": "2026-11-26T09:00:04Z",
        "Details": "smtp;250 2.0.0 OK", "Metadata": metadata,
    }


def mailgun_event(event_data: dict, *, key: str = MAILGUN_SIGNING_KEY) -> dict:
    timestamp, token = "1732611604", uuid.uuid4().hex
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {"signature": {"timestamp": timestamp, "token": token, "signature": signature}, "event-data": event_data}


def unchanged(reminder: Reminder) -> bool:
    """The reminder kept its status, nothing was written to its order's history."""
    before = reminder.status
    reminder.refresh_from_db()
    return reminder.status == before and not OrderEvent.objects.filter(order=reminder.order_id).exists()


# --- attack 1: a bounce naming nothing but our sequential reminder id ------------------------------

@pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailInsecureWebhookWarning")
def test_forged_bounce_with_shipped_defaults_is_not_even_heard(client, shipped_defaults, sent):
    """No secret configured: the endpoint is not there, whoever posts."""
    response = post(client, postmark_bounce(metadata={"reminder_id": str(sent.pk)}), auth=None)
    assert response.status_code == 404
    assert unchanged(sent)
    assert not TrackingEvent.objects.exists()


@pytest.mark.parametrize("message_id", [None, ""], ids=["no-message-id", "empty-message-id"])
def test_forged_bounce_with_only_reminder_id_changes_nothing(client, postmark, sent, message_id):
    """Even with the right basic auth (a leaked secret, another system on the same provider account),
    a bare reminder id is no proof: the reminder stays sent and its order stays remindable."""
    response = post(client, postmark_bounce(metadata={"reminder_id": str(sent.pk)}, message_id=message_id))
    assert response.status_code == 200  # the provider gets its 200 for a message we don't know
    assert unchanged(sent)
    assert TrackingEvent.objects.get().outcome == TrackingEvent.Outcome.UNKNOWN_MESSAGE


# --- attack 2: "delivered" for a reminder in flight moves its order up ---------------------------

@pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailInsecureWebhookWarning")
def test_forged_delivered_with_shipped_defaults_is_not_even_heard(client, shipped_defaults, in_flight):
    payload = postmark_delivery(metadata={"reminder_id": str(in_flight.pk)}, message_id=str(uuid.uuid4()))
    assert post(client, payload, auth=None).status_code == 404
    assert unchanged(in_flight)
    assert Order.objects.get(pk=in_flight.order_id).reminders_sent == 0


def test_forged_delivered_for_in_flight_reminder_changes_nothing(client, postmark, in_flight):
    payload = postmark_delivery(metadata={"reminder_id": str(in_flight.pk)}, message_id=str(uuid.uuid4()))
    assert post(client, payload).status_code == 200
    assert unchanged(in_flight)
    order = Order.objects.get(pk=in_flight.order_id)
    assert (order.reminders_sent, order.last_reminder_at) == (0, None)


# --- attack 3: every provider anymail knows is mounted --------------------------------------------

@pytest.mark.parametrize("provider", [*OTHER_PROVIDERS, "no_such_provider"])
def test_a_provider_other_than_the_configured_one_is_404(client, postmark, sent, provider):
    payload = postmark_bounce(metadata={"reminder_id": str(sent.pk)})
    assert post(client, payload, provider=provider).status_code == 404
    assert unchanged(sent)


@pytest.mark.parametrize("path", ["postmark/inbound/", "mandrill/", "mailgun/inbound_mime/"])
def test_anymail_urls_other_than_tracking_are_not_mounted(client, postmark, path):
    assert client.post(f"/webhooks/anymail/{path}", data="{}", content_type="application/json",
                       **basic_auth(SECRET)).status_code == 404


@pytest.mark.parametrize("backend", ["django.core.mail.backends.console.EmailBackend",
                                     "django.core.mail.backends.smtp.EmailBackend",
                                     "anymail.backends.test.EmailBackend"])
def test_without_a_provider_with_tracking_no_tracking_url_is_mounted(client, settings, sent, backend):
    settings.EMAIL_BACKEND = backend
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}
    response = post(client, postmark_bounce(metadata={}, message_id=sent.message_id))
    assert response.status_code == 404
    assert unchanged(sent)


# --- attack 4: malformed bodies answer 500 ----------------------------------------------------------

POSTMARK_MALFORMED = {
    "invalid-json": b'{"RecordType": "Bounce",',
    "not-utf-8": b'{"RecordType": "Bounce", "Description": "\xff\xfe"}',
    "empty": b"",
    "a-list": [{"RecordType": "Bounce"}],
    "a-string": "Bounce",
    "a-number": 42,
    "null": None,
    "record-type-a-list": {"RecordType": ["Bounce"], "MessageID": "x"},
    "type-a-dict": {"RecordType": "Bounce", "Type": {"a": 1}, "MessageID": "x"},
    "metadata-a-string": {"RecordType": "Delivery", "MessageID": "x", "Metadata": "reminder"},
    "metadata-a-list": {"RecordType": "Delivery", "MessageID": "x", "Metadata": [1, 2]},
    "timestamp-a-number": {"RecordType": "Delivery", "MessageID": "x", "DeliveredAt": 1732611604},
    "timestamp-impossible": {"RecordType": "Delivery", "MessageID": "x", "DeliveredAt": "2026-13-45T99:00:00Z"},
    "message-id-a-number": {"RecordType": "Delivery", "MessageID": 12345, "DeliveredAt": "2026-11-26T09:00:04Z"},
    "message-id-a-dict": {"RecordType": "Delivery", "MessageID": {"a": 1}},
    "description-a-number": {"RecordType": "Bounce", "Type": "HardBounce", "ID": 1, "MessageID": "x",
                             "Description": 550, "Details": ["smtp"]},
    "nul-character": {"RecordType": "Bounce", "Type": "HardBounce", "ID": 2, "MessageID": "x",
                      "Description": "bad\u0000byte", "Metadata": {"k": "v\u0000"}},
    "nul-in-a-metadata-key": {"RecordType": "Delivery", "MessageID": "x", "Metadata": {"k\u0000": "v"}},
    "nested-beyond-the-json-module": b'{"RecordType": "Delivery", "MessageID": "x", "Extra": '
                                     + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "nested-500-deep": b'{"RecordType": "Delivery", "MessageID": "x", "Extra": ' + b"[" * 500 + b"]" * 500 + b"}",
    "metadata-nested-500-deep": b'{"RecordType": "Delivery", "MessageID": "x", "Metadata": '
                                + b'{"a": ' * 500 + b"1" + b"}" * 500 + b"}",
}


@pytest.mark.parametrize("payload", POSTMARK_MALFORMED.values(), ids=POSTMARK_MALFORMED.keys())
def test_malformed_postmark_body_is_400(client, postmark, sent, payload):
    response = post(client, payload)
    assert response.status_code == 400
    assert unchanged(sent)
    assert not TrackingEvent.objects.exists()


MAILGUN_MALFORMED = {
    "invalid-json": b'{"signature": ',
    "a-list": [],
    "no-event-data": mailgun_event({}),
    "event-data-a-list": mailgun_event([1]),  # type: ignore[arg-type]
    "event-a-list": mailgun_event({"event": ["delivered"]}),
    "timestamp-text": mailgun_event({"event": "delivered", "timestamp": "yesterday"}),
    "headers-a-string": mailgun_event({"event": "delivered", "message": {"headers": "x"}}),
    "message-id-a-number": mailgun_event({"event": "delivered", "message": {"headers": {"message-id": 7}}}),
    "signature-a-string": {"signature": "x", "event-data": {"event": "delivered"}},
}


@pytest.mark.parametrize("payload", MAILGUN_MALFORMED.values(), ids=MAILGUN_MALFORMED.keys())
def test_malformed_mailgun_body_is_400(client, mailgun, sent, payload):
    response = post(client, payload, provider="mailgun")
    assert response.status_code == 400
    assert unchanged(sent)
    assert not TrackingEvent.objects.exists()


# --- attack 5: nothing stops a production start without the secret --------------------------------

def dunning_messages(**kwargs) -> list[checks.CheckMessage]:
    return [m for m in checks.run_checks(**kwargs) if m.id and m.id.startswith("dunning.")]


def test_without_a_webhook_secret_production_refuses_to_start(shipped_defaults, settings):
    settings.DEBUG = False
    messages = dunning_messages()
    assert [m.id for m in messages] == ["dunning.E001"]
    assert messages[0].level == checks.ERROR
    assert "WEBHOOK_SECRET" in messages[0].msg


# --- genuine events still apply ------------------------------------------------------------------------

def test_a_genuine_bounce_with_the_real_message_id_applies(client, postmark, sent):
    response = post(client, postmark_bounce(metadata={}, message_id=sent.message_id))
    assert response.status_code == 200
    sent.refresh_from_db()
    assert sent.status == Reminder.Status.BOUNCED
    assert OrderEvent.objects.get().action == "reminder_bounced"


def test_a_genuine_delivery_with_a_valid_token_settles_an_in_flight_reminder(client, postmark, in_flight):
    payload = postmark_delivery(metadata={"reminder_token": reminder_token(in_flight.pk)},
                                message_id=str(uuid.uuid4()))
    assert post(client, payload).status_code == 200
    in_flight.refresh_from_db()
    assert in_flight.status == Reminder.Status.DELIVERED
    assert Order.objects.get(pk=in_flight.order_id).reminders_sent == 1


def test_a_genuine_mailgun_bounce_applies(client, mailgun, sent):
    sent.message_id = "<20261126090000.1.ABCDEF@mg.webshop.example>"
    sent.save()
    payload = mailgun_event({"event": "failed", "severity": "permanent", "id": "mg-1", "timestamp": 1732611604.5,
                             "recipient": sent.recipient, "reason": "bounce",
                             "message": {"headers": {"message-id": sent.message_id[1:-1]}},
                             "delivery-status": {"description": "No such user", "message": "550 5.1.1"}})
    assert post(client, payload, provider="mailgun").status_code == 200
    sent.refresh_from_db()
    assert sent.status == Reminder.Status.BOUNCED


def test_a_token_with_another_reminder_id_changes_nothing(client, postmark, in_flight):
    """The signature of one reminder's token does not cover another id."""
    other = ReminderFactory(order=OrderFactory(), status=Reminder.Status.PENDING, message_id="")
    forged = f"{other.pk}.{reminder_token(in_flight.pk).partition('.')[2]}"
    payload = postmark_delivery(metadata={"reminder_token": forged}, message_id=str(uuid.uuid4()))
    assert post(client, payload).status_code == 200
    assert unchanged(other) and unchanged(in_flight)
    assert TrackingEvent.objects.get().outcome == TrackingEvent.Outcome.UNKNOWN_MESSAGE


@pytest.mark.parametrize("auth", [None, "tracking:wrong", "tracking", ""], ids=["none", "wrong", "no-colon", "empty"])
def test_a_genuine_body_without_the_right_basic_auth_changes_nothing(client, postmark, in_flight, auth):
    payload = postmark_delivery(metadata={"reminder_token": reminder_token(in_flight.pk)},
                                message_id=str(uuid.uuid4()))
    assert post(client, payload, auth=auth).status_code == 400
    assert unchanged(in_flight)
    assert not TrackingEvent.objects.exists()


def test_a_mailgun_event_with_a_wrong_signature_changes_nothing(client, mailgun, sent):
    payload = mailgun_event({"event": "failed", "severity": "permanent", "timestamp": 1732611604.5,
                             "message": {"headers": {"message-id": sent.message_id}}}, key="another-key")
    assert post(client, payload, provider="mailgun").status_code == 400
    assert unchanged(sent)


def test_the_mounted_webhook_answers_head_and_refuses_get(client, postmark):
    """Some providers check the URL with a HEAD when it is entered; GET is not a webhook."""
    assert client.head(url(), **basic_auth(SECRET)).status_code == 200
    assert client.get(url(), **basic_auth(SECRET)).status_code == 405


def test_what_the_sender_attaches_is_a_token_that_verifies(config, assignments, now, settings, mailoutbox):
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    order = OrderFactory(ordered_at=berlin(2026, 11, 5, 12))
    services.reminders_send(order_ids=[order.id], level=1, trigger=Reminder.Trigger.MANUAL, now=now)
    reminder = Reminder.objects.get(order=order)
    metadata = mailoutbox[0].metadata
    assert set(metadata) == {"reminder_token", "order"}  # no bare reminder id to be tempted by
    assert reminder_id_from_token(metadata["reminder_token"]) == reminder.pk
    assert len(metadata["reminder_token"]) <= 80  # Postmark's limit for a metadata value


# --- the token ---------------------------------------------------------------------------------------

def test_a_token_names_its_reminder():
    token = reminder_token(12345)
    assert token.startswith("12345.") and len(token.partition(".")[2]) == 64
    assert reminder_id_from_token(token) == 12345


@pytest.mark.parametrize("token", [
    None, 12345, 12.5, ["12345"], {"id": 12345}, b"12345", "", "12345", "12345.", ".abc",
    "12345.deadbeef", "12345." + "0" * 64, "012345.{sig}", "+12345.{sig}", " 12345.{sig}", "12345.{sig} ",
    "12345.{sig}.x", "١٢٣٤٥.{sig}", "12345.{SIG}", "1" * 20 + ".{sig}",
], ids=lambda t: repr(t)[:30])
def test_anything_but_a_token_of_ours_names_no_reminder(token):
    signature = reminder_token(12345).partition(".")[2]
    if isinstance(token, str):
        token = token.replace("{sig}", signature).replace("{SIG}", signature.upper())
    assert reminder_id_from_token(token) is None


def test_a_token_made_with_another_key_names_no_reminder(settings):
    token = reminder_token(7)
    settings.SECRET_KEY = "another-installation-" + "x" * 40
    assert reminder_id_from_token(token) is None
    settings.SECRET_KEY_FALLBACKS = ["another-key-" + "y" * 40]
    assert reminder_id_from_token(token) is None


def test_a_token_made_before_a_key_rotation_still_verifies(settings):
    token = reminder_token(7)
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "the-new-key-" + "z" * 40
    assert reminder_id_from_token(token) == 7
    assert reminder_token(7) != token  # new reminders are signed with the new key


# --- the system check ------------------------------------------------------------------------------------

def test_without_a_webhook_secret_development_is_warned(shipped_defaults, settings):
    settings.DEBUG = True
    messages = dunning_messages()
    assert [(m.id, m.level) for m in messages] == [("dunning.W001", checks.WARNING)]


@pytest.mark.parametrize("secret", ["", "nocolon", ":password", "user:", ["tracking:pw", "broken"], 42],
                         ids=["empty", "no-colon", "no-user", "no-password", "one-of-two-broken", "a-number"])
def test_a_malformed_webhook_secret_counts_as_none(settings, client, sent, secret):
    settings.DEBUG = False
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "x", "WEBHOOK_SECRET": secret}
    assert [m.id for m in dunning_messages()] == ["dunning.E001"]
    assert post(client, postmark_bounce(metadata={}, message_id=sent.message_id)).status_code == 404
    assert unchanged(sent)


@pytest.mark.parametrize("secret", [SECRET, [SECRET, "old:password"]], ids=["one", "two-during-a-change"])
def test_with_a_webhook_secret_the_check_is_quiet(settings, secret):
    settings.DEBUG = False
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "x", "WEBHOOK_SECRET": secret}
    assert dunning_messages() == []


@pytest.mark.parametrize("backend", ["django.core.mail.backends.console.EmailBackend",
                                     "django.core.mail.backends.smtp.EmailBackend",
                                     "anymail.backends.test.EmailBackend"])
def test_without_tracking_no_secret_is_needed(settings, backend):
    settings.DEBUG = False
    settings.EMAIL_BACKEND = backend
    settings.ANYMAIL = {}
    assert dunning_messages() == []


def test_a_provider_missing_its_own_webhook_setting_is_an_error(settings, client):
    """Mailgun signs its webhooks: without the signing key anymail's view cannot even start (a 500 on
    every event). The check says so before the first event does."""
    settings.DEBUG = False
    settings.EMAIL_BACKEND = "anymail.backends.mailgun.EmailBackend"
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}
    messages = dunning_messages()
    assert [m.id for m in messages] == ["dunning.E002"]
    assert "MAILGUN_WEBHOOK_SIGNING_KEY" in messages[0].msg


PRODUCTION = {
    "DJANGO_DEBUG": "false", "DJANGO_SECRET_KEY": "kT3v9-Qx7LmZ2pW8rY4sN6bH1cJ5dF0gA_eU-oI8uY7tR6eW5qA4sD3fG2",
    "DJANGO_ALLOWED_HOSTS": "mahnwesen.example", "DJANGO_SECURE_SSL_REDIRECT": "true", "DJANGO_HSTS_PRELOAD": "true",
    "DJANGO_TRUSTED_PROXIES": "172.18.0.1",
    "DATABASE_URL": "sqlite:////tmp/x.db", "EMAIL_BACKEND": "anymail.backends.postmark.EmailBackend",
    "ANYMAIL_POSTMARK_SERVER_TOKEN": "server-token",
}


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("DJANGO_", "PYTEST", "DATABASE_URL", "MAHNWESEN", "EMAIL_", "ANYMAIL_"))}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=django_settings.BASE_DIR, env={**clean, **env},
                          capture_output=True, text=True, timeout=120)


def test_production_with_postmark_and_no_secret_refuses_to_start():
    """`check` stands for every command that checks on start (`migrate` in docker compose)."""
    result = manage("check", env=PRODUCTION)
    assert result.returncode != 0
    assert "dunning.E001" in result.stderr and "ANYMAIL_WEBHOOK_SECRET" in result.stderr


def test_production_with_postmark_and_a_secret_passes_the_deploy_check():
    result = manage("check", "--deploy", "--fail-level", "WARNING",
                    env={**PRODUCTION, "ANYMAIL_WEBHOOK_SECRET": SECRET})
    assert result.returncode == 0, result.stdout + result.stderr


# --- the admin page of tracking events --------------------------------------------------------------------

ADMIN_LIST = "/admin/dunning/trackingevent/"


@pytest.fixture
def events(sent):
    common = dict(received_at=berlin(2026, 11, 26, 9, 1), occurred_at=berlin(2026, 11, 26, 9, 0))
    return [
        TrackingEvent.objects.create(provider="Postmark", event_id="1", event_type="bounced", reminder=sent,
                                     message_id=sent.message_id, outcome=TrackingEvent.Outcome.APPLIED, **common),
        TrackingEvent.objects.create(provider="Mailgun", event_id="2", event_type="opened",
                                     message_id="<20261126.1@mg.example>",
                                     outcome=TrackingEvent.Outcome.UNKNOWN_MESSAGE, **common),
    ]


def admin_client(user) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(user)
    return client


def test_back_office_sees_the_tracking_events(backoffice_user, events):
    response = admin_client(backoffice_user).get(ADMIN_LIST)
    assert response.status_code == 200
    html = response.content.decode()
    assert f'href="/admin/dunning/reminder/{events[0].reminder_id}/change/"' in html
    for text in ("Postmark", "Mailgun", "bounced", "opened", "Reminder status changed", "Unknown message, ignored"):
        assert text in html
    assert "/admin/dunning/trackingevent/add/" not in html
    assert "delete_selected" not in html
    assert ADMIN_LIST in admin_client(backoffice_user).get("/admin/").content.decode()


@pytest.mark.parametrize("query, expected", [
    ("outcome__exact=applied", ["1"]), ("outcome__exact=unknown_message", ["2"]), ("provider=Mailgun", ["2"]),
    ("event_type=bounced", ["1"]), ("event_type=delivered", []), ("q=20261126.1@mg.example", ["2"]),
    ("q=<20261126.1@mg.example>", ["2"]), ("q=20261126", []), ("q=", ["1", "2"]),
])
def test_filters_and_search_by_message_id(backoffice_user, events, query, expected):
    response = admin_client(backoffice_user).get(f"{ADMIN_LIST}?{query}")
    assert response.status_code == 200
    shown = sorted(event.event_id for event in response.context["cl"].result_list)
    assert shown == expected


def test_the_filters_offer_the_known_values(backoffice_user, events):
    html = admin_client(backoffice_user).get(ADMIN_LIST).content.decode()
    for choice in ("?provider=Postmark", "?provider=Amazon+SES", "?event_type=delivered", "?outcome__exact=applied"):
        assert choice in html


def test_the_detail_page_is_read_only(backoffice_user, events):
    client = admin_client(backoffice_user)
    change = f"{ADMIN_LIST}{events[0].pk}/change/"
    response = client.get(change)
    assert response.status_code == 200
    html = response.content.decode()
    assert events[0].message_id in html
    assert 'name="_save"' not in html
    assert client.post(change, {"outcome": "unchanged"}).status_code == 403
    assert client.get(f"{ADMIN_LIST}add/").status_code == 403
    assert client.post(f"{ADMIN_LIST}{events[0].pk}/delete/", {"post": "yes"}).status_code == 403
    events[0].refresh_from_db()
    assert events[0].outcome == TrackingEvent.Outcome.APPLIED


def test_support_may_look_but_not_touch_either(support_user, events):
    client = admin_client(support_user)
    assert client.get(ADMIN_LIST).status_code == 200
    assert client.get(f"{ADMIN_LIST}add/").status_code == 403
    assert client.post(f"{ADMIN_LIST}{events[0].pk}/delete/", {"post": "yes"}).status_code == 403


def test_staff_outside_the_group_gets_nothing(outsider_user, events):
    client = admin_client(outsider_user)
    assert client.get(ADMIN_LIST).status_code == 403
    assert client.get(f"{ADMIN_LIST}{events[0].pk}/change/").status_code == 403
