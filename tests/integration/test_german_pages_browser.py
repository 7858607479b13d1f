"""Issue 18, item 5 in a real browser, in German at 1366x768: the order page's history reads as
sentences written by the real import, engine and bulk service; a back-office user who opens a
support-only page gets the German 403 page inside the site's layout."""

import datetime
import re

import pytest
from django.utils import timezone

from tests.integration.test_open_payments_browser import browser_settings, page, staff  # noqa: F401

pytestmark = [pytest.mark.browser]

CSV = ("number;sales_account;payment_method;customer_name;customer_email;language;total;currency;ordered_at;"
       "paid_at;cancelled_at\n"
       "G-1;Webshop;invoice;Anna Schröder;anna@example.com;;1.249,90;EUR;{invoice_day};;\n"
       "G-2;Webshop;prepayment;Björn Yılmaz;bjoern@example.com;;49,90;EUR;{prepay_day};;\n")


@pytest.fixture
def history(transactional_db, staff, tmp_path):  # noqa: F811
    """Orders imported from long.csv, one reminded by the automatic engine, one cancelled with its
    reservation released by staff: all through the services the app itself calls."""
    from dunning.models import Reminder
    from dunning.services import reminders_send
    from orders.importing import import_orders_file
    from orders.models import Order
    from orders.services import orders_cancel
    from tests.factories import (
        DunningConfigFactory,
        PaymentMethodFactory,
        ReminderAssignmentFactory,
        SalesAccountFactory,
    )

    account = SalesAccountFactory(name="Webshop")
    invoice = PaymentMethodFactory(code="invoice", name="Rechnung", payment_term_days=14)
    PaymentMethodFactory(code="prepayment", name="Vorkasse", is_prepayment=True)
    DunningConfigFactory(sales_account=account, payment_method=invoice)
    ReminderAssignmentFactory(sales_account=account, level=1, send_automatically=True)
    now = timezone.now()
    day = (now - datetime.timedelta(days=30)).astimezone(datetime.UTC)
    path = tmp_path / "long.csv"
    path.write_text(CSV.format(invoice_day=day.strftime("%d.%m.%Y"), prepay_day=day.strftime("%d.%m.%Y")))
    import_orders_file(path, now=now)
    g1, g2 = Order.objects.get(number="G-1"), Order.objects.get(number="G-2")
    outcome = reminders_send(order_ids=[g1.id], level=1, trigger=Reminder.Trigger.AUTOMATIC, now=now)
    assert outcome.sent == [g1.id]
    Order.objects.filter(pk=g2.pk).update(flagged_for_cancellation_at=now)
    assert orders_cancel(order_ids=[g2.id], release_reservation=True, user=staff, now=now).done == [g2.id]
    return g1, g2


def sign_in(page, live_server):  # noqa: F811
    page.goto(live_server.url + "/accounts/login/")
    page.fill("#id_username", "backoffice")
    page.fill("#id_password", "secret-pass-123")
    page.press("#id_password", "Enter")
    page.wait_for_url(re.compile(r"/orders/open-payments/"))


def test_the_history_reads_as_german_sentences(history, live_server, page):  # noqa: F811
    from playwright.sync_api import expect

    g1, g2 = history
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/orders/{g1.pk}/")
    table = page.locator("#audit-trail")
    expect(table).to_contain_text("Mahnung versendet")
    rows = table.inner_text()
    assert "Mahnstufe 1, automatisch" in rows
    assert "Importiert aus long.csv, Zeile 2" in rows
    assert "level:" not in rows and "trigger" not in rows and "file:" not in rows

    page.goto(f"{live_server.url}/orders/{g2.pk}/")
    rows = page.locator("#audit-trail").inner_text()
    assert "Importiert aus long.csv, Zeile 3" in rows
    assert "Storniert" in rows and "Lagerreservierung freigegeben" in rows and "backoffice" in rows


def test_a_support_only_page_says_no_in_german_inside_the_layout(staff, live_server, page):  # noqa: F811
    from playwright.sync_api import expect

    sign_in(page, live_server)
    response = page.goto(f"{live_server.url}/admin/dunning/dunningautomation/1/change/")
    assert response.status == 403
    expect(page.locator("h1")).to_have_text("Kein Zugriff")
    assert "nur für den Support" in page.locator("#forbidden-reason").inner_text()
    # the site's header with its navigation, so the way back is one click
    expect(page.locator("#header .main-nav")).to_contain_text("Offene Zahlungen")
    page.click("text=Zur Startseite")
    page.wait_for_url(re.compile(r"/orders/open-payments/"))
