"""The daily flow in a real browser (Chromium through Playwright): sign in, open the overview,
filter level 1, check two orders, Notify, confirm, see the result, and see the two orders leave
level 1 for level 2."""

import datetime
import os
import re

import pytest
from django.utils import timezone

from dunning.selectors import local_midnight, local_today
from tests.conftest import chromium_path
from tests.factories import OrderFactory, ReminderAssignmentFactory

pytestmark = [pytest.mark.browser]

# Playwright's sync API runs an event loop in this thread; the ORM calls of the test itself are
# synchronous and safe, so let Django allow them.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


@pytest.fixture
def browser_settings(settings):
    # cookies must work over plain http on the live server
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    settings.SECURE_SSL_REDIRECT = False
    return settings


@pytest.fixture
def page(live_server, browser_settings):
    """A Chromium page. Request it after the fixtures that write to the database: while Playwright
    runs, its event loop makes Django's connections context-local, and a connection opened then
    would outlive the test (on PostgreSQL the test database could not be dropped)."""
    path = chromium_path()
    if not path:
        pytest.skip("Chromium is not installed (looked for `chromium` / `chromium-browser` on PATH)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=LAUNCH_ARGS)
        context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="de-DE")
        page = context.new_page()
        page.set_default_timeout(15_000)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        yield page
        context.close()
        browser.close()
        assert errors == [], errors  # no JavaScript errors (CSP blocks inline scripts)


@pytest.fixture
def staff(transactional_db):
    from django.contrib.auth.models import Group

    from tests.factories import UserFactory

    # a transactional test flushes the database afterwards, data migrations included
    Group.objects.get_or_create(name="Back office")
    return UserFactory(username="backoffice", is_staff=True, groups=["Back office"])


@pytest.fixture
def shop(transactional_db, staff):
    from tests.factories import DunningConfigFactory, PaymentMethodFactory, SalesAccountFactory

    account = SalesAccountFactory(name="Webshop")
    invoice = PaymentMethodFactory(code="invoice", name="Rechnung", payment_term_days=14)
    # no gap between reminders: an order reminded at level 1 is at level 2 at once (it is 16 days overdue)
    DunningConfigFactory(sales_account=account, payment_method=invoice, min_days_between_reminders=0)
    for level in (1, 2, 3):
        ReminderAssignmentFactory(sales_account=account, level=level)
    today = local_today(timezone.now())
    ordered = local_midnight(today - datetime.timedelta(days=16 + 14)) + datetime.timedelta(hours=12)
    return [
        OrderFactory(sales_account=account, payment_method=invoice, number=f"B-{i}", ordered_at=ordered)
        for i in range(4)
    ]


def level_count(page, level: str) -> int:
    return int(page.locator(f'.level-tabs a[data-level="{level}"] .count').inner_text())


def test_notify_two_orders_at_level_1(shop, live_server, page, mailoutbox):
    page.goto(live_server.url + "/orders/open-payments/")
    assert "/accounts/login/" in page.url
    page.fill("#id_username", "backoffice")
    page.fill("#id_password", "secret-pass-123")
    page.click("button[type=submit].primary")
    page.wait_for_url(re.compile(r"/orders/open-payments/"))

    # the overview, unfiltered: no Notify
    assert page.locator("h1").inner_text() == "Offene Zahlungen"
    assert page.locator("#notify-button").count() == 0
    assert page.locator("td.number a").count() == 4
    assert level_count(page, "1") == 4 and level_count(page, "2") == 0

    # filter level 1
    page.click('.level-tabs a[data-level="1"]')
    page.wait_for_url(re.compile(r"dunning_level=1"))
    assert page.locator("#notify-button").is_visible()
    assert page.locator(".chip").count() == 1

    chosen = shop[:2]
    for order in chosen:
        page.check(f'input.action-select[value="{order.pk}"]')
    assert page.locator(".selected-count").inner_text() == "2 von 4 ausgewählt"

    page.click("#notify-button")
    page.wait_for_url(re.compile(r"/orders/open-payments/notify/"))
    assert page.locator("#will-send").inner_text() == "2"
    assert "Zahlungserinnerung zu Bestellung" in page.locator(".mail-head").inner_text()
    assert mailoutbox == []  # nothing sent before confirming

    page.click("#confirm-notify")
    page.wait_for_url(re.compile(r"/orders/open-payments/runs/\d+/"))
    assert page.locator("#count-sent").inner_text() == "2"
    assert page.locator("#count-skipped").inner_text() == "0"
    assert len(mailoutbox) == 2

    # back to the list: the two left level 1 and are at level 2 with one sent reminder
    page.click("text=Zurück zu den offenen Zahlungen")
    page.wait_for_url(re.compile(r"dunning_level=1"))
    numbers = page.locator("td.number a").all_inner_texts()
    assert sorted(numbers) == sorted(o.number for o in shop[2:])
    assert level_count(page, "1") == 2 and level_count(page, "2") == 2

    page.click('.level-tabs a[data-level="2"]')
    page.wait_for_url(re.compile(r"dunning_level=2"))
    assert sorted(page.locator("td.number a").all_inner_texts()) == sorted(o.number for o in chosen)
    assert page.locator("td.sent-reminders").all_inner_texts() == ["1", "1"]


def test_select_all_checkbox_and_language_switch(shop, live_server, page):
    page.goto(live_server.url + "/accounts/login/")
    page.fill("#id_username", "backoffice")
    page.fill("#id_password", "secret-pass-123")
    page.click("button[type=submit].primary")
    page.wait_for_url(re.compile(r"/orders/open-payments/"))
    page.check("#select-all")
    assert page.locator("input.action-select:checked").count() == 4
    page.click('.lang-switch button[value="en"]')
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "Open payments"
    assert page.locator("th", has_text="Sent reminders").count() == 1


@pytest.fixture
def claim_rows(shop):
    """The shop's orders with a claim beyond the amount (written before `page` starts Playwright)."""
    from decimal import Decimal

    from dunning.models import BaseRate, DunningConfig
    from orders.models import Order
    from payments.models import Payment

    # a transactional test before this one flushed the seeded base rates
    BaseRate.objects.get_or_create(valid_from=datetime.date(2026, 1, 1), defaults={"rate": Decimal("1.27")})
    DunningConfig.objects.update(charge_interest=True, charge_flat_fee_b2b=True, level_2_fee=Decimal("2.50"))
    Order.objects.filter(pk=shop[0].pk).update(total=Decimal("123456.78"), customer_is_business=True,
                                               customer_name="Sehr lange Firmenbezeichnung GmbH & Co. KG")
    Order.objects.filter(pk=shop[1].pk).update(total=Decimal("1249.90"))
    Payment.objects.create(order=shop[1], amount=Decimal("249.90"), currency="EUR", source_id="screenshot-1",
                           booked_on=local_today(timezone.now()) - datetime.timedelta(days=3))
    return shop


def test_total_due_column_fits_1366_px(claim_rows, live_server, page):
    """The "Fällig gesamt" column (today's claim per row) with wide amounts: the table does not
    scroll sideways at 1366 px. SCREENSHOTS=1 saves docs/screenshots/overview-total-due-de.png."""
    from pathlib import Path

    page.goto(live_server.url + "/orders/open-payments/")
    page.fill("#id_username", "backoffice")
    page.fill("#id_password", "secret-pass-123")
    page.click("button[type=submit].primary")
    page.wait_for_url(re.compile(r"/orders/open-payments/"))
    assert "Fällig gesamt" in page.locator("table.result-list thead").inner_text()
    dues = page.locator("td.total-due").all_inner_texts()
    # 1,249.90 - 249.90 paid; 123,456.78 + 40.00 flat fee + interest since the due date
    assert "1.000,00\xa0€" in dues and any(d.startswith("124.") for d in dues), dues
    if os.environ.get("SCREENSHOTS"):
        target = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "overview-total-due-de.png"
        page.screenshot(path=str(target), full_page=True)
    wrap = page.locator(".table-wrap")
    assert wrap.evaluate("el => el.scrollWidth <= el.clientWidth"), "the table scrolls sideways at 1366 px"
    # no cell of the new column cuts its amount off
    assert page.locator("td.total-due").evaluate_all("cells => cells.every(c => c.scrollWidth <= c.clientWidth)")


def test_dates_are_never_cut_in_either_language_at_1024_and_1366_px(shop, live_server, page):
    """English dates ("10/19/2026") are wider than German ones: in a window narrower than the
    table's minimum the table scrolls sideways instead of ending a date in "…"."""
    page.goto(live_server.url + "/orders/open-payments/")
    page.fill("#id_username", "backoffice")
    page.fill("#id_password", "secret-pass-123")
    page.click("button[type=submit].primary")
    page.wait_for_url(re.compile(r"/orders/open-payments/"))
    for language in ("de", "en"):
        if language == "en":
            page.click('.lang-switch button[value="en"]')
            page.wait_for_url(re.compile(r"/orders/open-payments/"))
            assert page.locator("h1").inner_text() == "Open payments"
        for width in (1366, 1024):
            page.set_viewport_size({"width": width, "height": 768})
            dates = page.locator("td.date")
            assert dates.count() >= 4 and re.search(r"2\d{3}", dates.first.inner_text())
            cut = dates.evaluate_all("cells => cells.filter(c => c.scrollWidth > c.clientWidth).map(c => c.innerText)")
            assert cut == [], (language, width, cut)
            fits = page.locator(".table-wrap").evaluate("el => el.scrollWidth <= el.clientWidth")
            assert fits == (width == 1366), (language, width)
