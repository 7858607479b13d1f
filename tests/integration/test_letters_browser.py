"""Letters in a real browser, in German at 1366x768: Notify with "Senden und alle Briefe als ein PDF
erstellen" leads to the download of one PDF with every letter; the order page offers each
reminder's letter. SCREENSHOTS=1 saves docs/screenshots/letters-batch-de.png and order-letters-de.png."""

import datetime
import os
import re
from pathlib import Path

import pytest
from django.utils import timezone

from dunning.selectors import local_midnight, local_today
from tests.factories import OrderFactory, ReminderAssignmentFactory
from tests.integration.test_open_payments_browser import browser_settings, page, staff  # noqa: F401
from tests.integration.test_seller_view_browser import sign_in
from tests.letters_support import page_text

pytestmark = [pytest.mark.browser]
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture
def shop(transactional_db, staff, settings, tmp_path, needs_weasyprint):  # noqa: F811
    from tests.factories import DunningConfigFactory, PaymentMethodFactory, SalesAccountFactory

    settings.MEDIA_ROOT = tmp_path
    account = SalesAccountFactory(name="Webshop", company_name="Beispiel-Shop GmbH", street="Friedrichstraße 123",
                                  postcode="10117", city="Berlin", iban="DE02 1203 0000 0000 2020 51",
                                  account_holder="Beispiel-Shop GmbH")
    invoice = PaymentMethodFactory(code="invoice", name="Rechnung", payment_term_days=14)
    DunningConfigFactory(sales_account=account, payment_method=invoice)
    for level in (1, 2, 3):
        ReminderAssignmentFactory(sales_account=account, level=level)
    ordered = local_midnight(local_today(timezone.now()) - datetime.timedelta(days=24)) + datetime.timedelta(hours=12)
    return [OrderFactory(number=f"B-{i}", customer_name=name, sales_account=account, payment_method=invoice,
                         ordered_at=ordered, customer_street=f"Lindenallee {i}", customer_postcode="80331",
                         customer_city="München") for i, name in enumerate(["Anna Schröder", "Björn Yılmaz"], 1)]


def test_send_and_all_letters_as_one_pdf_then_the_order_page(shop, live_server, page, mailoutbox):  # noqa: F811
    sign_in(page, live_server)
    page.goto(live_server.url + "/orders/open-payments/?dunning_level=1")
    page.check("#select-all")
    page.click("#notify-button")
    page.wait_for_url(re.compile(r"/orders/open-payments/notify/"))
    assert "alle Briefe als ein PDF" in page.locator("#letters-note").inner_text()
    page.click("#confirm-notify-letters")
    page.wait_for_url(re.compile(r"/orders/letters/\d+/"))
    assert "2 Briefe sind fertig" in page.locator("#letter-batch").inner_text()
    if os.environ.get("SCREENSHOTS") == "1":
        page.screenshot(path=str(SHOTS / "letters-batch-de.png"))
    with page.expect_download() as download:
        page.click("#letters-download")
    pdf = Path(download.value.path()).read_bytes()
    text = page_text(pdf)
    assert "Auftragsnummer B-1" in text and "Auftragsnummer B-2" in text and len(mailoutbox) == 2

    page.goto(live_server.url + f"/orders/{shop[0].pk}/")
    link = page.locator("a.letter-link")
    assert link.count() == 1 and link.inner_text() == "PDF"
    if os.environ.get("SCREENSHOTS") == "1":
        page.screenshot(path=str(SHOTS / "order-letters-de.png"), full_page=True)
    with page.expect_download() as download:
        link.click()
    assert "Anna Schröder" in page_text(Path(download.value.path()).read_bytes())
