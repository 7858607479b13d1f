"""The receivables dashboard in a real browser (Chromium through Playwright), in German: what the
user reads at 1366x768 (figures, the live/snapshot notes, the reminder effect), a bar of the chart
followed to the overview of exactly its orders, a reminder-effect figure followed to the overview
widened to paid orders, and a bad period answered with a form error. SCREENSHOTS=1 saves
docs/screenshots/dashboard-effect-links-de.png, dashboard-effect-list-de.png and
dashboard-trend-today-de.png."""

import datetime
import io
import os
import re
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from dunning.selectors import local_midnight, local_today
from tests.conftest import chromium_path
from tests.factories import EmailTemplateFactory, OrderFactory, ReminderFactory

pytestmark = [pytest.mark.browser]

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


@pytest.fixture
def browser_settings(settings):
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    settings.SECURE_SSL_REDIRECT = False
    return settings


@pytest.fixture
def page(live_server, browser_settings):
    """A Chromium page, requested after the fixtures that write to the database."""
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
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        yield page
        context.close()
        browser.close()
        assert errors == [], errors  # no JavaScript errors, no CSP violations


@pytest.fixture
def ledger(transactional_db):
    """Three open invoice orders of the Webshop (10, 40 and 95 days overdue) and one paid 2 days
    after its level-1 reminder, then the snapshot."""
    from django.contrib.auth.models import Group

    from tests.factories import DunningConfigFactory, PaymentMethodFactory, SalesAccountFactory, UserFactory

    Group.objects.get_or_create(name="Back office")
    UserFactory(username="backoffice", is_staff=True, groups=["Back office"])
    account = SalesAccountFactory(name="Webshop")
    invoice = PaymentMethodFactory(code="invoice", name="Rechnung", payment_term_days=14)
    DunningConfigFactory(sales_account=account, payment_method=invoice)
    today = local_today(timezone.now())

    def day(n):
        return local_midnight(today - datetime.timedelta(days=n)) + datetime.timedelta(hours=10)

    for overdue, total in ((10, "100.00"), (40, "200.00"), (95, "300.00")):
        OrderFactory(sales_account=account, payment_method=invoice, ordered_at=day(overdue + 14), total=Decimal(total))
    paid = OrderFactory(sales_account=account, payment_method=invoice, ordered_at=day(50), paid_at=day(18),
                        total=Decimal("50.00"))
    template = EmailTemplateFactory(name="Zahlungserinnerung", language="de")
    ReminderFactory(order=paid, level=1, template=template, created_at=day(20), sent_at=day(20))
    call_command("record_dashboard_snapshot", stdout=io.StringIO())


def text(value: str) -> str:
    """What the user reads: no-break spaces as spaces, runs of white space as one."""
    return re.sub(r"\s+", " ", value.replace("\xa0", " ")).strip()


def test_dashboard_in_german(ledger, live_server, page):
    page.goto(live_server.url + "/orders/dashboard/")
    page.fill("#id_username", "backoffice")
    page.fill("#id_password", "secret-pass-123")
    page.press("#id_password", "Enter")
    page.wait_for_url(re.compile(r"/orders/dashboard/"))

    assert page.locator("h1").inner_text() == "Forderungen im Überblick"
    assert page.locator(".main-nav a[aria-current=page]").inner_text() == "Dashboard"
    assert "Offene Aufträge nach Tagen überfällig und Mahnstufe: jetzt" in page.locator("#dash-asof").inner_text()
    assert "Stand der letzten Erfassung" in page.locator("#dash-asof").inner_text()
    assert text(page.locator("#kpi-open-EUR").inner_text()) == "Offen LIVE 600,00 € 3 Aufträge"
    rows = page.locator("#age-table-EUR tbody tr").all_inner_texts()
    assert [text(r) for r in rows] == [
        "noch nicht fällig 0 0,00 €",
        "1-30 Tage überfällig 1 100,00 €",
        "31-60 Tage überfällig 1 200,00 €",
        "61-90 Tage überfällig 0 0,00 €",
        "über 90 Tage überfällig 1 300,00 €",
    ]
    effect = text(page.locator("#effect-levels tbody tr").first.inner_text())
    assert effect.startswith("Mahnstufe 1 1 100,0 % (1/1) 100,0 % (1/1) 1 2 50,00 €"), effect
    # the charts and the account table fit the window at 1366 px
    for selector in ("#currency-EUR", "#accounts-table-EUR", "#currency-EUR svg.bar-chart >> nth=1"):
        box = page.locator(selector).bounding_box()
        assert box["x"] + box["width"] <= 1366, selector

    # a bar of the chart leads to the overview of exactly its orders
    page.locator("#currency-EUR svg.bar-chart a").nth(2).click()
    page.wait_for_url(re.compile(r"/orders/open-payments/\?.*age=31-60"))
    assert page.locator("td.number a").count() == 1
    chips = page.locator(".chip").all_inner_texts()
    assert any("31-60 Tage überfällig" in c for c in chips) and any("EUR" in c for c in chips)
    assert text(page.locator("#filter-sum").inner_text()) == "200,00 €"

    # a bad period is a form error, not an error page
    page.goto(live_server.url + "/orders/dashboard/?start=2026-05-01&end=2026-04-01")
    assert page.locator(".field-error").inner_text() == "Das Ende des Zeitraums darf nicht vor seinem Beginn liegen."
    assert page.locator("#effect-levels").count() == 0


def shot(page, name: str, selector: str | None = None) -> None:
    if os.environ.get("SCREENSHOTS"):
        if selector:
            page.locator(selector).scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / name))


def test_reminder_effect_links_to_paid_orders(ledger, live_server, page):
    page.goto(live_server.url + "/orders/dashboard/")
    page.fill("#id_username", "backoffice")
    page.fill("#id_password", "secret-pass-123")
    page.press("#id_password", "Enter")
    page.wait_for_url(re.compile(r"/orders/dashboard/"))
    caption = text(page.locator("#trend-table-EUR caption").inner_text())
    assert "Die Zahlen von heute führen zur Übersicht" in caption
    assert "vergangene Tage führen zu keiner Liste" in caption
    shot(page, "dashboard-trend-today-de.png", "#trend-table-EUR")
    row = page.locator("#effect-levels tbody tr").first
    shot(page, "dashboard-effect-links-de.png", "#effect-templates")
    # "paid after it" of level 1: the one paid order, in the overview widened to closed orders
    row.locator("td").nth(3).locator("a").click()
    page.wait_for_url(re.compile(r"/orders/open-payments/\?state=all.*paid_within=any"))
    assert page.locator("td.number a").count() == 1
    assert page.locator(".badge.closed-paid").inner_text().startswith("bezahlt ")
    chips = [text(c) for c in page.locator(".chip").all_inner_texts()]
    assert any("Alle (offen, bezahlt, storniert)" in c for c in chips), chips
    assert any("Mahnstufe 1" in c for c in chips) and any("danach bezahlt" in c for c in chips), chips
    assert text(page.locator("#filter-sum").inner_text()) == "50,00 €"
    assert text(page.locator(".level-tabs a").first.inner_text()).startswith("Alle")
    assert "auch bezahlte oder stornierte Aufträge" in page.locator("#widened-note").inner_text()
    assert text(page.locator("td.total-due").inner_text()) == "–"  # nothing due on a paid order
    shot(page, "dashboard-effect-list-de.png")
