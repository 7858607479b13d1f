"""POST /api/v1/payments twice at the same moment, on PostgreSQL: one payment, one 201, one 200."""

import json
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from accounts.services import api_key_create
from orders.models import Order, OrderEvent
from payments.models import Payment
from tests.concurrency import run_in_threads
from tests.factories import OrderFactory

pytestmark = pytest.mark.django_db(transaction=True)
ROUNDS = 5


def post(key, body):
    r = Client(HTTP_AUTHORIZATION=f"Bearer {key}").post("/api/v1/payments", data=json.dumps(body),
                                                          content_type="application/json")
    return r.status_code, r.json()


@pytest.fixture
def key(require_postgres, account):
    cache.clear()
    yield api_key_create(sales_account=account, name="ERP")[1]
    cache.clear()


def body(number, tx):
    return {"order_number": number, "amount": "49.90", "currency": "EUR",
            "booked_on": timezone.localdate().isoformat(), "transaction_id": tx}


def test_two_identical_requests_at_once_record_one_payment(key, account, invoice):
    for i in range(ROUNDS):
        order = OrderFactory(sales_account=account, payment_method=invoice, number=f"A-{i}", total=Decimal("49.90"))
        results = run_in_threads(*[lambda i=i: post(key, body(f"A-{i}", f"tx-{i}")) for _ in range(2)])
        assert sorted(status for status, _ in results) == [200, 201]
        assert results[0][1] == results[1][1]
        assert Payment.objects.filter(source_id__endswith=f":tx-{i}").count() == 1
        assert order.events.filter(action=OrderEvent.Action.PAID_BY_BANK).count() == 1
    assert Order.objects.filter(paid_at__isnull=True).count() == 0


def test_the_same_transaction_id_for_two_orders_at_once_records_one(key, account, invoice):
    for i in range(ROUNDS):
        for n in ("X", "Y"):
            OrderFactory(sales_account=account, payment_method=invoice, number=f"{n}-{i}", total=Decimal("49.90"))
        results = run_in_threads(lambda i=i: post(key, body(f"X-{i}", f"t-{i}")),
                                 lambda i=i: post(key, body(f"Y-{i}", f"t-{i}")))
        assert sorted(status for status, _ in results) == [200, 201]
        assert results[0][1] == results[1][1]  # the replay answers the first payment
        assert Payment.objects.filter(source_id__endswith=f":t-{i}").count() == 1
    assert Order.objects.filter(paid_at__isnull=False).count() == ROUNDS
