"""issue 18 in a real browser, in German at 1366x768: what a seller reads. The Notify confirmation
names the orders and the skipped ones with their reason; the tabs and the filter show money per
currency; a not-yet-due order reads "fällig in N Tagen"; switching the automatic job on shows what
its first run would do before "Ja, einschalten"."""

import datetime
import re
from decimal import Decimal

import pytest
from django.utils import timezone

from dunning.selectors import local_midnight, local_today
from tests.factories import OrderFactory, ReminderAssignmentFactory
from tests.integration.test_open_payments_browser import browser_settings, page, staff  # noqa: F401

pytestmark = [pytest.mark.browser]


@pytest.fixture
def shop(transactional_db, staff):  # noqa: F811
    from tests.factories import DunningConfigFactory, PaymentMethodFactory, SalesAccountFactory

    account = SalesAccountFactory(name="Webshop")
    invoice = PaymentMethodFactory(code="invoice", name="Rechnung", payment_term_days=14)
    DunningConfigFactory(sales_account=account, payment_method=invoice)
    for level in (1, 2, 3):
        ReminderAssignmentFactory(sales_account=account, level=level, send_automatically=level == 1)
    today = local_today(timezone.now())
    overdue = local_midnight(today - datetime.timedelta(days=10 + 14)) + datetime.timedelta(hours=12)
    soon = local_midnight(today - datetime.timedelta(days=1)) + datetime.timedelta(hours=12)
    common = {"sales_account": account, "payment_method": invoice}
    return {
        "a": OrderFactory(number="B-1", customer_name="Anna Schröder", total=Decimal("12000.00"), ordered_at=overdue,
                          **common),
        "b": OrderFactory(number="B-2", customer_name="Björn Yılmaz", total=Decimal("345.67"), ordered_at=overdue,
                          **common),
        "nomail": OrderFactory(number="B-3", customer_name="Erika Ohnemail", customer_email="",
                               total=Decimal("99.00"), currency="GBP", ordered_at=overdue, **common),
        "soon": OrderFactory(number="B-4", ordered_at=soon, **common),
    }


def sign_in(page, live_server, username="backoffice"):  # noqa: F811
    page.goto(live_server.url + "/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", "secret-pass-123")
    page.click("button[type=submit].primary")
    page.wait_for_url(re.compile(r"/orders/open-payments/"))


def test_money_due_in_and_the_notify_confirmation_in_german(shop, live_server, page, mailoutbox):  # noqa: F811
    sign_in(page, live_server)
    assert "fällig in 13 Tagen" in page.locator("table.result-list").inner_text()
    assert "So wird gerechnet" in page.locator("#help-link").inner_text()

    page.click('.level-tabs a[data-level="1"]')
    page.wait_for_url(re.compile(r"dunning_level=1"))
    tab = page.locator('.level-tabs a[data-level="1"]').inner_text().replace("\xa0", " ")
    assert "12.345,67 €" in tab and "99,00 £" in tab
    assert page.locator(".result-count").inner_text().replace("\xa0", " ") == "3 Aufträge · 12.345,67 € + 99,00 £"
    # the full order number and amount are readable at 1366 px (no ellipsis)
    cell = page.locator("td.amount").first
    assert cell.evaluate("e => e.scrollWidth <= e.clientWidth")

    page.check("#select-all")
    page.click("#notify-button")
    page.wait_for_url(re.compile(r"/orders/open-payments/notify/"))
    sending = page.locator("#will-send-orders").inner_text()
    assert "Diese 2 Aufträge erhalten die Mahnung" in sending
    assert "B-1" in sending and "Anna Schröder" in sending and "12.000,00 €" in sending.replace("\xa0", " ")
    skipped = page.locator("#skipped-orders").inner_text()
    assert "Dieser Auftrag wird übersprungen" in skipped
    assert "B-3" in skipped and "Erika Ohnemail" in skipped and "keine E-Mail-Adresse" in skipped
    assert mailoutbox == []


def test_switching_the_job_on_shows_the_first_run_first(shop, live_server, page):  # noqa: F811
    from dunning.models import DunningAutomation
    from tests.factories import UserFactory

    UserFactory(username="support", is_staff=True, is_superuser=True)
    sign_in(page, live_server, "support")
    page.goto(live_server.url + "/admin/dunning/dunningautomation/1/change/")
    page.check("#id_enabled")
    page.click("input[name=_save]")
    text = page.locator("#content-main").inner_text()
    assert "Sie schalten den automatischen Lauf ein" in text
    # the no-e-mail order is due too; the run itself skips it and reports why
    assert "3 Mahnungen fällig zum automatischen Versand" in text
    assert page.locator("#confirm-automation").input_value() == "Ja, einschalten"
    assert not DunningAutomation.load().enabled
    page.click("#confirm-automation")
    page.wait_for_load_state()
    assert DunningAutomation.load().enabled
