"""Webhooks against a real HTTP server on 127.0.0.1 (WEBHOOK_ALLOW_PRIVATE=true): the automatic
cancellation with release delivers `order.cancelled` with `release_reservation: true`, signed (checked
with the `standardwebhooks` package), and a receiver answering 500 gets the same event again, with
the same webhook-id, once it recovers."""

import datetime
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from dunning import services as dunning_services
from dunning.models import DunningConfig
from tests.factories import DunningConfigFactory, OrderFactory
from webhooks import delivery as sender
from webhooks import services
from webhooks.models import WebhookDelivery, WebhookEndpoint


class Receiver:
    def __init__(self) -> None:
        self.received: list[tuple[dict, str]] = []
        self.answers: list[int] = []  # status codes to answer, in order; then 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["content-length"])).decode()
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.answers.pop(0) if receiver.answers else 200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    with Receiver() as r:
        yield r


@pytest.mark.django_db(transaction=True)
def test_cancellation_with_release_is_delivered_then_500_is_retried(receiver, account, prepayment):
    endpoint = WebhookEndpoint.objects.create(sales_account=account, url=receiver.url, events=["order.cancelled"])
    DunningConfigFactory(sales_account=account, payment_method=prepayment, cancel_after_days=14,
                         cancellation_action=DunningConfig.CancellationAction.CANCEL_AND_RELEASE)
    now = timezone.now()
    order = OrderFactory(sales_account=account, payment_method=prepayment, ordered_at=now - datetime.timedelta(days=20))
    receiver.answers = [500]
    dunning_services.dunning_run_execute(now=now)  # the commit's kick delivers (eager Celery in tests)
    sender.deliveries_send_due(now=timezone.now())
    delivery = WebhookDelivery.objects.get()
    assert len(receiver.received) == 1 and delivery.status == WebhookDelivery.Status.PENDING
    assert delivery.last_status_code == 500 and delivery.attempts == 1
    # not due again before the backoff
    assert sender.deliveries_send_due(now=timezone.now()) == (0, 0)
    assert sender.deliveries_send_due(now=delivery.next_attempt_at) == (1, 0)
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.DELIVERED and delivery.last_status_code == 200
    assert len(receiver.received) == 2
    (h1, b1), (h2, b2) = receiver.received
    assert h1["webhook-id"] == h2["webhook-id"] == delivery.event_id
    payload = Webhook(endpoint.secret).verify(b2, h2)
    assert payload["type"] == "order.cancelled"
    assert payload["data"]["order_number"] == order.number
    assert payload["data"]["release_reservation"] is True
    assert json.loads(b1) == json.loads(b2)


@pytest.mark.django_db(transaction=True)
def test_redirect_is_not_followed(receiver, account):
    receiver.answers = [302]
    WebhookEndpoint.objects.create(sales_account=account, url=receiver.url)
    services.event_emit("order.paid", {"order_number": "A"}, sales_account_id=account.id, now=timezone.now())
    sender.deliveries_send_due(now=timezone.now())
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == WebhookDelivery.Status.PENDING and delivery.last_status_code == 302
    assert "redirect" in delivery.last_error and len(receiver.received) == 1


class _Dns:
    """socket.getaddrinfo with fixed answers for some names, each a list used in turn (the last
    one repeats); every other name is resolved as usual."""

    def __init__(self, monkeypatch, answers: dict[str, list[str]]) -> None:
        import socket

        self.answers = {name: list(ips) for name, ips in answers.items()}
        self.asked: list[str] = []
        real = socket.getaddrinfo

        def getaddrinfo(host, port, *args, **kwargs):
            if host not in self.answers:
                return real(host, port, *args, **kwargs)
            self.asked.append(host)
            ips = self.answers[host]
            ip = ips.pop(0) if len(ips) > 1 else ips[0]
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (ip, port or 0))]

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.mark.django_db
def test_a_name_that_rebinds_to_a_private_address_after_the_check_is_not_called(receiver, account, settings,
                                                                               monkeypatch):
    """The endpoint's name answers with a public address when it is checked and with the receiver's
    127.0.0.1 a moment later: the delivery is refused and the receiver gets nothing."""
    url = f"http://rebind.example:{receiver.server.server_port}/hook"
    WebhookEndpoint.objects.create(sales_account=account, url=url, events=["order.paid"])
    settings.WEBHOOK_ALLOW_PRIVATE = False
    dns = _Dns(monkeypatch, {"rebind.example": ["93.184.216.34", "127.0.0.1"]})
    now = timezone.now()
    services.event_emit("order.paid", {"order_number": "A"}, sales_account_id=account.id, now=now)
    assert sender.deliveries_send_due(now=now) == (0, 1)
    delivery = WebhookDelivery.objects.get()
    assert receiver.received == []
    assert "private or local address (127.0.0.1)" in delivery.last_error
    assert delivery.status == WebhookDelivery.Status.PENDING and delivery.last_status_code is None
    assert dns.asked == ["rebind.example", "rebind.example"]  # checked, then resolved once to connect


@pytest.mark.django_db
def test_the_connection_goes_to_the_checked_address_with_the_name_in_the_host_header(receiver, account, settings,
                                                                                    monkeypatch):
    """The connection resolves the name once, checks the address and connects to that address;
    the request still names the host. (127.0.0.1 counts as public here, so the receiver can answer.)"""
    from webhooks import urls_check

    original = urls_check._refused
    monkeypatch.setattr(urls_check, "_refused", lambda ip: str(ip) != "127.0.0.1" and original(ip))
    url = f"http://hooks.example:{receiver.server.server_port}/hook"
    WebhookEndpoint.objects.create(sales_account=account, url=url, events=["order.paid"])
    settings.WEBHOOK_ALLOW_PRIVATE = False
    _Dns(monkeypatch, {"hooks.example": ["127.0.0.1"]})
    now = timezone.now()
    services.event_emit("order.paid", {"order_number": "A"}, sales_account_id=account.id, now=now)
    assert sender.deliveries_send_due(now=now) == (1, 0)
    [(headers, body)] = receiver.received
    assert headers["host"] == f"hooks.example:{receiver.server.server_port}"
    assert json.loads(body)["data"]["order_number"] == "A"
