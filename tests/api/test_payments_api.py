"""POST /api/v1/payments: recorded, matched like a bank payment, idempotent by transaction_id."""

import datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from orders.models import Order, OrderEvent
from payments.models import Payment
from tests.api import test_api
from tests.api.test_api import assert_problem
from tests.factories import OrderFactory, SalesAccountFactory
from webhooks.models import WebhookEndpoint, WebhookEvent

TODAY = timezone.localdate().isoformat()
# the API tests' fixtures: a key of the account, a client with it, a fresh rate limit
key, api, _fresh_rate_limit = test_api.key, test_api.api, test_api._fresh_rate_limit


def body(**kw):
    b = {"order_number": "A-1", "amount": "49.90", "currency": "EUR", "booked_on": TODAY, "transaction_id": "tx-1"}
    b.update(kw)
    return b


@pytest.fixture
def order(account, invoice):
    return OrderFactory(sales_account=account, payment_method=invoice, number="A-1", total=Decimal("49.90"))


@pytest.fixture
def endpoint(account):
    return WebhookEndpoint.objects.create(sales_account=account, url="https://example.com/hook")


def test_a_payment_that_covers_the_order_pays_it_like_a_bank_payment(api, order, endpoint):
    r = api.post("payments", body())
    assert r.status_code == 201, r.content
    assert r.json() == {"transaction_id": "tx-1", "order_number": "A-1", "amount": "49.90", "currency": "EUR",
                        "booked_on": TODAY, "matched": True, "order_paid": True}
    payment = Payment.objects.get()
    assert payment.order == order and payment.matched_by == Payment.MatchedBy.API
    assert payment.source_id == f"api:{order.sales_account_id}:tx-1" and payment.statement is None
    order.refresh_from_db()
    assert timezone.localtime(order.paid_at).date().isoformat() == TODAY
    actions = set(order.events.values_list("action", flat=True))
    assert {OrderEvent.Action.PAYMENT_MATCHED, OrderEvent.Action.PAID_BY_BANK} <= actions
    event = WebhookEvent.objects.get()
    assert event.type == "order.paid" and event.data["order_number"] == "A-1"
    assert api.get("orders/A-1").json()["open"] is False


def test_a_partial_payment_leaves_the_order_open_and_the_next_one_completes_it(api, order):
    assert api.post("payments", body(amount="20.00")).json()["order_paid"] is False
    order.refresh_from_db()
    assert order.paid_at is None and order.outstanding == Decimal("29.90")
    assert api.post("payments", body(amount="29.90", transaction_id="tx-2")).json()["order_paid"] is True
    assert Order.objects.get(pk=order.pk).paid_at is not None


def test_the_same_transaction_id_again_returns_the_first_result_and_adds_nothing(api, order):
    first = api.post("payments", body(amount="10.00"))
    again = api.post("payments", body(amount="10.00"))
    assert first.status_code == 201 and again.status_code == 200
    assert again.json() == first.json()
    assert Payment.objects.count() == 1
    assert order.events.filter(action=OrderEvent.Action.PAYMENT_MATCHED).count() == 1


def test_transaction_ids_are_per_sales_account(api, order, invoice):
    other = SalesAccountFactory(name="Marktplatz")
    OrderFactory(sales_account=other, payment_method=invoice, number="B-1")
    Payment.objects.create(amount=Decimal("1.00"), currency="EUR", booked_on=datetime.date(2026, 11, 1),
                           source_id=f"api:{other.id}:tx-1")
    assert api.post("payments", body()).status_code == 201
    assert Payment.objects.count() == 2


def test_another_accounts_order_and_an_unknown_one_are_404(api, order, invoice):
    OrderFactory(sales_account=SalesAccountFactory(name="Marktplatz"), payment_method=invoice, number="B-1")
    assert_problem(api.post("payments", body(order_number="B-1")), 404)
    assert_problem(api.post("payments", body(order_number="nope")), 404)
    assert not Payment.objects.exists()


@pytest.mark.parametrize(("change", "field"), [
    ({"currency": "USD"}, "currency"),  # not the order's
    ({"currency": "XYZ"}, "currency"),
    ({"amount": "0.00"}, "amount"),
    ({"amount": "-5.00"}, "amount"),
    ({"amount": "12,50"}, "amount"),
    ({"amount": "1.234"}, "amount"),
    ({"amount": 12.5}, "amount"),
    ({"amount": None}, "amount"),
    ({"booked_on": "26.11.2026"}, "booked_on"),
    ({"booked_on": "2999-01-01"}, "booked_on"),
    ({"booked_on": "1999-12-31"}, "booked_on"),
    ({"transaction_id": ""}, "transaction_id"),
    ({"transaction_id": "x" * 101}, "transaction_id"),
    ({"transaction_id": "a\nb"}, "transaction_id"),
    ({"order_number": 17}, "order_number"),
    ({"reminders_sent": "0"}, "reminders_sent"),
])
def test_bad_input_is_a_400_with_the_field_and_records_nothing(api, order, change, field):
    assert_problem(api.post("payments", body(**change)), 400, field=field)
    assert not Payment.objects.exists()
    order.refresh_from_db()
    assert order.paid_at is None


def test_malformed_bodies_are_400(api, order):
    assert_problem(api.post("payments", "{not json"), 400)
    assert_problem(api.post("payments", ["a"]), 400)
    assert not Payment.objects.exists()


def test_a_payment_for_a_paid_order_is_recorded_unmatched_for_staff(api, order, endpoint, now):
    Order.objects.filter(pk=order.pk).update(paid_at=now)
    r = api.post("payments", body())
    assert r.status_code == 201 and r.json()["matched"] is False and r.json()["order_number"] == "A-1"
    payment = Payment.objects.get()
    assert payment.order is None and payment.no_auto_match and payment.matched_by == ""
    event = WebhookEvent.objects.get()
    assert event.type == "payment.unmatched" and event.data["order_number"] == "A-1"
    assert event.data["amount"] == "49.90"
    assert api.post("payments", body()).status_code == 200


def test_without_a_key_401(client, order):
    r = client.post("/api/v1/payments", data=body(), content_type="application/json")
    assert_problem(r, 401)
