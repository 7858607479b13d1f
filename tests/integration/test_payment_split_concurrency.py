"""Two staff members act on the same unmatched payment at the same moment, on PostgreSQL: a split
and an assign, or two splits. The payment's row lock decides: exactly one wins, the other gets a
message, and the orders' payments add up to the payment once."""

import functools
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.utils import timezone

from payments.models import Payment
from payments.services import PaymentActionError, payment_assign, payment_split
from tests.concurrency import run_in_threads
from tests.factories import OrderFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)
ROUNDS = 4


def attempt(call):
    try:
        call()
        return "ok"
    except PaymentActionError as exc:
        return str(exc)


def test_split_and_assign_or_two_splits_at_once_apply_once(require_postgres, account, invoice):
    # a user of its own: a transactional test before this one may have flushed the seeded groups
    clerk = UserFactory(username="clerk", is_staff=True)
    now = timezone.now()
    for i in range(ROUNDS):
        first, second = (OrderFactory(sales_account=account, payment_method=invoice, number=f"S{i}-{n}",
                                      total=Decimal("5.00"), customer_email="kunde@example.com") for n in (1, 2))
        payment = Payment.objects.create(amount=Decimal("10.00"), currency="EUR", booked_on=now.date(),
                                         source_id=f"race:{i}", reference=f"S{i}-1 S{i}-2")
        parts = [(first.pk, Decimal("5.00")), (second.pk, Decimal("5.00"))]
        split = functools.partial(payment_split, payment_id=payment.pk, parts=parts, user=clerk, now=now)
        assign = functools.partial(payment_assign, payment_id=payment.pk, order_id=first.pk, user=clerk,
                                   now=now)
        other = split if i % 2 else assign
        results = run_in_threads(functools.partial(attempt, split), functools.partial(attempt, other))
        assert sorted(results).count("ok") == 1, results
        on_orders = Payment.objects.filter(order__in=[first, second]).aggregate(s=Sum("amount"))["s"]
        assert on_orders == Decimal("10.00")  # never 20.00: the payment counts once
        payment.refresh_from_db()
        assert (payment.split_at is not None) != (payment.order_id is not None)
