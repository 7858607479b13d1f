"""`payment.unmatched`: one webhook event per credit a bank import leaves unmatched, to the one
sales account whose orders its texts name; never to an account it may not concern."""

import pytest

from payments.models import Payment
from tests.factories import SalesAccountFactory
from tests.payments.test_import import CBK, SPK, orders, run  # noqa: F401 (the orders fixture)
from webhooks.models import WebhookEndpoint, WebhookEvent


@pytest.fixture
def endpoint(account):
    return WebhookEndpoint.objects.create(sales_account=account, url="https://example.com/hook")


def unmatched_events():
    return {e.data["order_number"]: e for e in WebhookEvent.objects.filter(type="payment.unmatched")}


def test_unmatched_credits_naming_orders_of_one_account_are_sent_to_it(orders, endpoint, account, now):  # noqa: F811
    orders("A100009", total="5.00"), orders("A100010", total="5.00"), orders("A100011")
    run(CBK, now=now)
    events = unmatched_events()
    two = events["A100009"]  # "A100009/A100010" in one transfer
    assert two.sales_account_id == account.id and two.data["order_numbers"] == ["A100009", "A100010"]
    assert two.data["sales_account"] == "Webshop" and two.data["amount"] == "10.00"
    payment = Payment.objects.get(reference__contains="A100009")
    assert two.data["booked_on"] == payment.booked_on.isoformat() and two.data["currency"] == "EUR"
    assert events["A100011"].data["currency"] == "USD"  # a USD payment for a EUR order
    unmatched = Payment.objects.filter(order__isnull=True, kind="credit").count()
    assert len(events) == WebhookEvent.objects.filter(type="payment.unmatched").count() < unmatched


def test_no_event_when_orders_of_several_accounts_are_named(orders, endpoint, now):  # noqa: F811
    orders("A100001")
    other = SalesAccountFactory(name="eBay")
    WebhookEndpoint.objects.create(sales_account=other, url="https://example.com/ebay")
    orders("A100001", sales_account=other)
    run(SPK, now=now)
    assert Payment.objects.get(reference__contains="A100001").order is None
    assert "A100001" not in unmatched_events()


def test_no_event_when_no_order_is_named_and_none_in_a_dry_run(orders, endpoint, now):  # noqa: F811
    orders("A100011")
    run(CBK, now=now, dry_run=True)
    assert not WebhookEvent.objects.exists()
    run(CBK, now=now)
    assert set(unmatched_events()) == {"A100011"}
