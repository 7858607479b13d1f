"""The unmatched payments page in a real browser, in German (Chromium through Playwright): a transfer
naming two orders of one customer is split over them (the form starts with both orders), the
overview then labels the partly paid one with what is outstanding, the split is undone; a payment
is marked "not an order payment" and put back. SCREENSHOTS=1 saves the pages under
docs/screenshots/."""

import datetime
import os
import re
from decimal import Decimal
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.integration.test_open_payments_browser import browser_settings, page, staff  # noqa: F401

pytestmark = [pytest.mark.browser]

CBK = Path(__file__).parent.parent / "payments" / "fixtures" / "camt053_commerzbank_001_04.xml"
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture
def queue(transactional_db, staff):  # noqa: F811
    """Two open orders of one customer and the statement whose 10.00 EUR names both (written before
    Playwright starts)."""
    from django.utils import timezone

    from dunning.selectors import local_midnight, local_today
    from payments.services import statements_import
    from tests.factories import DunningConfigFactory, OrderFactory, PaymentMethodFactory, SalesAccountFactory

    account = SalesAccountFactory(name="Webshop")
    invoice = PaymentMethodFactory(code="invoice", name="Rechnung", payment_term_days=14)
    DunningConfigFactory(sales_account=account, payment_method=invoice)
    ordered = local_midnight(local_today(timezone.now()) - datetime.timedelta(days=30)) + datetime.timedelta(hours=12)
    orders = [OrderFactory(sales_account=account, payment_method=invoice, number=number, total=Decimal(total),
                           customer_name="Erika Mustermann", customer_email="erika@example.com", ordered_at=ordered)
              for number, total in (("A100009", "5.00"), ("A100010", "8.00"))]
    statements_import([str(CBK)], now=timezone.now())
    return orders


def shot(page, name: str) -> None:  # noqa: F811
    if os.environ.get("SCREENSHOTS"):
        page.screenshot(path=str(SHOTS / name), full_page=True)


def test_split_undo_dismiss_and_back(queue, live_server, page):  # noqa: F811
    from django.db import connections

    try:
        _flow(queue, live_server, page)
    finally:
        connections.close_all()  # see test_statement_upload_browser.py


def _flow(queue, live_server, page):  # noqa: F811
    from payments.models import Payment

    first, second = queue
    page.goto(f"{live_server.url}/payments/unmatched/")
    page.fill("#id_username", "backoffice")
    page.fill("#id_password", "secret-pass-123")
    page.press("#id_password", "Enter")
    page.wait_for_url(re.compile(r"/payments/unmatched/"))
    expect(page.locator("h1")).to_have_text("Nicht zugeordnete Zahlungen")
    row = page.locator("#unmatched tr", has_text="A100009/A100010")
    split = row.locator("details.split")
    expect(split.locator("summary")).to_have_text("Auf mehrere Aufträge aufteilen")
    orders = split.locator("input[name=split_order]")
    expect(orders.nth(0)).to_have_value("A100009")  # the form starts with the orders the texts name
    expect(orders.nth(1)).to_have_value("A100010")
    amounts = split.locator("input[name=split_amount]")
    expect(amounts.nth(0)).to_have_value("5,00")
    expect(amounts.nth(1)).to_have_value("5,00")  # 8.00 due, but 5.00 of the payment are left
    amounts.nth(1).fill("4,00")
    split.get_by_role("button", name="Aufteilen").click()
    expect(page.locator(".messagelist")).to_contain_text("Die Teile ergeben zusammen 9,00 EUR")
    row = page.locator("#unmatched tr", has_text="A100009/A100010")
    row.locator("input[name=split_amount]").nth(0).fill("5,00")
    row.locator("input[name=split_amount]").nth(1).fill("5,00")
    shot(page, "unmatched-split-de.png")
    row.get_by_role("button", name="Aufteilen").click()
    expect(page.locator(".messagelist")).to_have_text("Die Zahlung wurde auf 2 Aufträge aufgeteilt.")
    expect(page.locator("#split-payments")).to_contain_text("A100010: 5,00\xa0€")
    shot(page, "unmatched-after-split-de.png")
    first.refresh_from_db()
    assert first.paid_at is not None

    page.goto(f"{live_server.url}/orders/{second.pk}/")
    payments = page.locator("#payments")
    expect(payments.locator("#outstanding")).to_contain_text("3,00\xa0€")
    expect(payments.get_by_role("button", name="Aufteilung aufheben")).to_have_count(1)  # a part: no "unassign"
    shot(page, "order-split-part-de.png")

    page.goto(f"{live_server.url}/orders/open-payments/")
    label = page.locator("tr", has_text="A100010").locator(".badge.partly-paid")
    expect(label).to_contain_text("teilweise bezahlt")
    expect(label.locator(".outstanding")).to_have_text("3,00\xa0€ offen")
    shot(page, "overview-partly-paid-de.png")

    page.goto(f"{live_server.url}/payments/unmatched/")
    page.locator("#split-payments").get_by_role("button", name="Aufteilung aufheben").click()
    expect(page.locator(".messagelist")).to_contain_text("Die Aufteilung wurde aufgehoben")
    expect(page.locator("#unmatched")).to_contain_text("A100009/A100010")
    first.refresh_from_db()
    assert first.paid_at is None and not Payment.objects.filter(parent__isnull=False).exists()

    usd = page.locator("#unmatched tr", has_text="25,00")
    usd.get_by_role("button", name="Keine Auftragszahlung").click()
    expect(page.locator(".messagelist")).to_have_text("Die Zahlung wurde als „Keine Auftragszahlung“ markiert.")
    dismissed = page.locator("#dismissed-payments")
    expect(dismissed).to_contain_text("25,00")
    shot(page, "unmatched-dismissed-de.png")
    dismissed.get_by_role("button", name="Zurück in die Liste").click()
    expect(page.locator(".messagelist")).to_have_text("Die Zahlung steht wieder bei den nicht zugeordneten Zahlungen.")
    expect(page.locator("#dismissed-payments")).to_have_count(0)
    expect(page.locator("#unmatched tr", has_text="25,00")).to_have_count(1)
