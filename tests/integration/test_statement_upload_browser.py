"""The statement upload in a real browser (Chromium through Playwright): sign in, upload a camt.053
file, see the one-line result in German, the order paid, the badge counting the unmatched
payment; then a corrupt file: a clear error in German, status 400, nothing written."""

import re
from decimal import Decimal
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.integration.test_open_payments_browser import browser_settings, page, staff  # noqa: F401

pytestmark = [pytest.mark.browser]

FIXTURE = Path(__file__).parent.parent / "payments" / "fixtures" / "camt053_sparkasse_001_02.xml"


@pytest.fixture
def order(transactional_db, staff):  # noqa: F811
    from tests.factories import OrderFactory, PaymentMethodFactory, SalesAccountFactory

    return OrderFactory(sales_account=SalesAccountFactory(name="Webshop"),
                        payment_method=PaymentMethodFactory(code="invoice", name="Rechnung", payment_term_days=14),
                        number="A100001", total=Decimal("49.90"))


def test_upload_page(order, live_server, page, tmp_path):  # noqa: F811
    from django.db import connections

    try:
        _upload_page(order, live_server, page, tmp_path)
    finally:
        # the ORM calls below run while Playwright's loop makes connections context-local: close
        # them here, or PostgreSQL cannot drop the test database at the end of the session
        connections.close_all()


def _upload_page(order, live_server, page, tmp_path):  # noqa: F811
    from payments.models import BankStatement, Payment

    page.goto(f"{live_server.url}/payments/upload/")
    page.fill("#id_username", "backoffice")
    page.fill("#id_password", "secret-pass-123")
    page.click("button[type=submit].primary")
    page.wait_for_url(re.compile(r"/payments/upload/"))
    page.set_input_files("input[name=files]", str(FIXTURE))
    page.click("form[enctype] button[type=submit]")
    result = page.locator("#upload-result")
    assert result.inner_text() == ("4 Buchungen, 3 Zahlungen, 1 zugeordnet, 1 nicht zugeordnet, 0 Duplikate, "
                                   "1 ignoriert")
    order.refresh_from_db()
    assert order.paid_at is not None
    # a locator assertion polls from Python: wait_for_function would poll a string through eval,
    # which the page's CSP (script-src 'self') refuses whenever the badge is not there at once
    expect(page.locator("#unmatched-badge")).to_have_text("1", timeout=15_000)

    bad = tmp_path / "kaputt.xml"
    bad.write_bytes(FIXTURE.read_bytes().replace(b">20.00<", b">20,00<"))
    page.set_input_files("input[name=files]", str(bad))
    page.click("form[enctype] button[type=submit]")
    error = page.locator("#upload-error").inner_text()
    assert "kaputt.xml: Buchung 3: ungültiger Betrag '20,00'" in error
    assert BankStatement.objects.count() == 1 and Payment.objects.count() == 3
