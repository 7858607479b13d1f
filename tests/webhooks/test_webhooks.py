"""Webhooks: the outbox written in the caller's transaction, Standard Webhooks signatures (checked
with the `standardwebhooks` package, not with our own code), backoff, URL checks, the admin."""

import datetime
import json
from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from dunning import services as dunning_services
from dunning.models import DunningConfig
from orders.services import orders_cancel, orders_mark_paid
from tests.factories import (
    DunningConfigFactory,
    OrderFactory,
    ReminderAssignmentFactory,
    SalesAccountFactory,
    berlin,
)
from webhooks import delivery as sender
from webhooks import services
from webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent, new_secret

Status = WebhookDelivery.Status


@pytest.fixture
def endpoint(account, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    return WebhookEndpoint.objects.create(sales_account=account, url="http://127.0.0.1:9/hook")


def test_secret_format():
    secret = new_secret()
    assert secret.startswith("whsec_")
    import base64
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32


def test_signature_verifies_with_standardwebhooks(endpoint, account):
    now = timezone.now()
    services.event_emit("order.paid", {"order_number": "A-1"}, sales_account_id=account.id, now=now)
    event = WebhookEvent.objects.get()
    headers, body = sender.request_parts(event, endpoint, now=now)
    payload = Webhook(endpoint.secret).verify(body, headers)
    assert payload["id"] == event.id and payload["type"] == "order.paid"
    assert payload["data"] == {"order_number": "A-1", "sales_account": "Webshop"}
    with pytest.raises(Exception):  # noqa: B017 - any verification error
        Webhook(new_secret()).verify(body, headers)


def test_emit_writes_nothing_without_a_subscribed_endpoint(account, now):
    assert services.event_emit("order.paid", {"order_number": "A"}, sales_account_id=account.id, now=now) == 0
    WebhookEndpoint.objects.create(sales_account=account, url="https://example.com/h", events=["order.cancelled"])
    assert services.event_emit("order.paid", {"order_number": "A"}, sales_account_id=account.id, now=now) == 0
    assert not WebhookEvent.objects.exists()
    other = SalesAccountFactory(name="eBay")
    WebhookEndpoint.objects.create(sales_account=other, url="https://example.com/h")
    assert services.event_emit("order.paid", {"order_number": "A"}, sales_account_id=account.id, now=now) == 0


def test_unknown_event_type_is_refused(account, now):
    with pytest.raises(ValueError):
        services.event_emit("order.exploded", {}, sales_account_id=account.id, now=now)


def test_emit_in_bulk_is_three_queries(endpoint, account, now):
    # (SQLite splits an INSERT at its 999-variable limit; 50 events with their deliveries stay under it)
    with CaptureQueriesContext(connection) as ctx:
        services.events_emit("reminder.sent", [(account.id, {"order_number": str(i)}) for i in range(50)], now=now)
    assert len(ctx.captured_queries) <= 3
    assert WebhookEvent.objects.count() == 50 and WebhookDelivery.objects.count() == 50


def test_backoff_then_failed_after_more_than_24_hours(endpoint, account, now):
    services.event_emit("order.paid", {"order_number": "A"}, sales_account_id=account.id, now=now)
    delivery = WebhookDelivery.objects.get()
    first = now
    with mock.patch.object(sender, "_post", return_value=(500, "HTTP 500")) as post:
        t = now
        for _ in range(sender.MAX_ATTEMPTS):
            assert sender.deliveries_send_due(now=t) == (0, 1)
            delivery.refresh_from_db()
            if delivery.status == Status.FAILED:
                break
            assert sender.deliveries_send_due(now=delivery.next_attempt_at - datetime.timedelta(seconds=1)) == (0, 0)
            t = delivery.next_attempt_at
    assert delivery.status == Status.FAILED and delivery.attempts == sender.MAX_ATTEMPTS
    assert t - first >= datetime.timedelta(hours=24)
    ids = {call.args[1]["webhook-id"] for call in post.call_args_list}
    assert ids == {delivery.event_id}  # the same webhook-id on every attempt
    assert delivery.last_status_code == 500


def test_delivered_on_2xx(endpoint, account, now):
    services.event_emit("order.paid", {"order_number": "A"}, sales_account_id=account.id, now=now)
    with mock.patch.object(sender, "_post", return_value=(204, "")):
        assert sender.deliveries_send_due(now=now) == (1, 0)
    d = WebhookDelivery.objects.get()
    assert d.status == Status.DELIVERED and d.attempts == 1 and d.last_status_code == 204
    assert sender.deliveries_send_due(now=now + datetime.timedelta(days=1)) == (0, 0)


def test_claimed_delivery_is_not_claimed_twice(endpoint, account, now):
    services.event_emit("order.paid", {"order_number": "A"}, sales_account_id=account.id, now=now)
    assert len(sender._claim(now, 10)) == 1
    assert sender._claim(now, 10) == []


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/hook", "http://localhost/hook", "http://10.1.2.3/x", "http://192.168.0.1/x",
    "http://169.254.169.254/latest/meta-data", "http://[::1]/x", "ftp://example.com/x", "http://user:pw@example.com/",
    "http://0.0.0.0/", "not a url",
])
def test_private_and_odd_urls_refused(account, settings, url):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    endpoint = WebhookEndpoint(sales_account=account, url=url)
    with pytest.raises(ValidationError) as exc:
        endpoint.full_clean()
    assert "url" in exc.value.message_dict


def test_private_url_refused_at_delivery_too(account, settings, now):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    WebhookEndpoint.objects.create(sales_account=account, url="http://127.0.0.1:9/hook")
    services.event_emit("order.paid", {"order_number": "A"}, sales_account_id=account.id, now=now)
    settings.WEBHOOK_ALLOW_PRIVATE = False
    assert sender.deliveries_send_due(now=now) == (0, 1)
    d = WebhookDelivery.objects.get()
    assert "private or local" in d.last_error and d.status == Status.PENDING and d.last_status_code is None


def test_unknown_event_types_refused_at_save(account, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    endpoint = WebhookEndpoint(sales_account=account, url="http://127.0.0.1/h", events=["order.paid", "nope"])
    with pytest.raises(ValidationError) as exc:
        endpoint.full_clean()
    assert "events" in exc.value.message_dict


def test_mark_paid_and_cancel_emit(endpoint, account, prepayment, now):
    paid = OrderFactory(sales_account=account)
    flagged = OrderFactory(sales_account=account, payment_method=prepayment, flagged_for_cancellation_at=now)
    orders_mark_paid(order_ids=[paid.id], paid_at=now, user=None, now=now)
    orders_cancel(order_ids=[flagged.id, paid.id], release_reservation=True, user=None, now=now)
    events = {e.type: e.data for e in WebhookEvent.objects.all()}
    assert events["order.paid"]["order_number"] == paid.number
    assert events["order.cancelled"] == {"order_number": flagged.number, "sales_account": "Webshop",
                                         "cancelled_at": now.isoformat(), "release_reservation": True}
    assert WebhookEvent.objects.count() == 2  # the skipped order emitted nothing


@pytest.mark.parametrize("action,expected", [
    (DunningConfig.CancellationAction.FLAG, ("order.flagged_for_cancellation", None)),
    (DunningConfig.CancellationAction.CANCEL, ("order.cancelled", False)),
    (DunningConfig.CancellationAction.CANCEL_AND_RELEASE, ("order.cancelled", True)),
])
def test_engine_emits_cancellation_events(endpoint, account, prepayment, now, action, expected):
    DunningConfigFactory(sales_account=account, payment_method=prepayment, cancel_after_days=14,
                         cancellation_action=action)
    order = OrderFactory(sales_account=account, payment_method=prepayment, ordered_at=now - datetime.timedelta(days=20))
    dunning_services.dunning_run_execute(now=now)
    event = WebhookEvent.objects.get()
    assert event.type == expected[0] and event.data["order_number"] == order.number
    assert event.data.get("release_reservation") == expected[1]


def test_engine_emits_reminder_sent_per_reminder(endpoint, config, account, now):
    ReminderAssignmentFactory(sales_account=account, level=1, send_automatically=True)
    orders = [OrderFactory(sales_account=account, ordered_at=berlin(2026, 9, 1)) for _ in range(3)]
    run = dunning_services.dunning_run_execute(now=now)
    assert run.sent == 3
    events = WebhookEvent.objects.filter(type="reminder.sent")
    assert sorted(e.data["order_number"] for e in events) == sorted(o.number for o in orders)
    assert all(e.data["level"] == 1 for e in events)


def test_admin_shows_secret_once_and_deliveries_read_only(client, support_user, account, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    client.force_login(support_user)
    response = client.post("/admin/webhooks/webhookendpoint/add/", {
        "sales_account": account.id, "url": "http://127.0.0.1:8001/hook", "events": "[]", "is_active": "on"},
        follow=True)
    assert response.status_code == 200
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret in response.content.decode()
    page = client.get(f"/admin/webhooks/webhookendpoint/{endpoint.id}/change/").content.decode()
    assert endpoint.secret not in page
    services.event_emit("order.paid", {"order_number": "A"}, sales_account_id=account.id, now=timezone.now())
    assert client.get("/admin/webhooks/webhookdelivery/").status_code == 200
    delivery = WebhookDelivery.objects.get()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status=Status.FAILED, attempts=8, next_attempt_at=None)
    with mock.patch.object(sender, "_post", return_value=(200, "")):
        client.post("/admin/webhooks/webhookdelivery/", {"action": "redeliver", "_selected_action": [delivery.id]})
    delivery.refresh_from_db()
    assert delivery.status in (Status.PENDING, Status.DELIVERED) and delivery.attempts <= 1


def test_body_is_the_documented_shape(endpoint, account, now):
    services.event_emit("order.paid", {"order_number": "A"}, sales_account_id=account.id, now=now)
    event = WebhookEvent.objects.get()
    body = json.loads(sender.request_parts(event, endpoint, now=now)[1])
    assert set(body) == {"id", "type", "created_at", "data"}


def test_engine_queries_do_not_grow_with_reminders_when_emitting(endpoint, config, account, now):
    """With a subscribed endpoint the job still costs the same number of queries for 3 or 30
    reminders: events are written in bulk per recorded batch."""
    ReminderAssignmentFactory(sales_account=account, level=1, send_automatically=True)

    def run_with(n, at):
        for _ in range(n):
            OrderFactory(sales_account=account, ordered_at=berlin(2026, 9, 1))
        with CaptureQueriesContext(connection) as ctx:
            run = dunning_services.dunning_run_execute(now=at)
        assert run.sent == n
        return len(ctx.captured_queries)

    few = run_with(3, now)
    many = run_with(30, now + datetime.timedelta(minutes=1))
    assert many == few
    assert WebhookEvent.objects.filter(type="reminder.sent").count() == 33
