"""The overview's "Total due" column: today's claim of each row of the page, the same figures as
the order page (`order_claim_on`), computed from data loaded once for the page."""

import datetime
from decimal import Decimal

from django.utils import timezone

from dunning.models import DunningConfig, Reminder
from dunning.selectors import order_claim_on
from payments.models import Payment
from tests.factories import DunningConfigFactory, PaymentMethodFactory

URL = "/orders/open-payments/"


def test_each_row_shows_the_claim_of_the_order_page(bo_client, place, config, account, today):
    DunningConfig.objects.filter(pk=config.pk).update(level_2_fee=Decimal("2.50"), charge_interest=True,
                                                       charge_flat_fee_b2b=True)
    consumer = place(25, sent=2, number="C1", total=Decimal("1000.00"))
    Reminder.objects.filter(order=consumer, level=1).update(deadline=today - datetime.timedelta(days=12))
    business = place(60, sent=1, number="B1", total=Decimal("500.00"), customer_is_business=True)
    Payment.objects.create(order=business, amount=Decimal("100.00"), currency="EUR", source_id="p1",
                           booked_on=today - datetime.timedelta(days=20))
    plain = place(10, number="P1", total=Decimal("80.00"))
    # an order whose config is inactive: its settings still count, as on the order page
    other = PaymentMethodFactory(code="other", payment_term_days=14)
    DunningConfigFactory(sales_account=account, payment_method=other, is_active=False, charge_interest=True)
    inactive = place(40, number="I1", total=Decimal("300.00"), payment_method=other, customer_is_business=True)

    response = bo_client.get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Fällig gesamt" in html
    rows = {order.number: order for order in response.context["orders"]}
    now = timezone.now()
    for order in (consumer, business, plain, inactive):
        expected, _ = order_claim_on(order, now=now)
        assert rows[order.number].claim == expected
    assert rows["C1"].claim.interest > 0 and rows["C1"].claim.fees == Decimal("2.50")
    assert rows["B1"].claim.flat_fee == Decimal("40.00") and rows["B1"].claim.paid == Decimal("100.00")
    assert rows["I1"].claim.interest > 0
    assert rows["P1"].claim.total_due == Decimal("80.00")
    # formatted per currency like the amount column (German: 80,00 €)
    assert "80,00\xa0€" in html or "80,00 €" in html


def test_an_empty_page_reads_no_claim_data(bo_client, db):
    response = bo_client.get(URL)
    assert response.status_code == 200
    assert response.context["orders"] == []
