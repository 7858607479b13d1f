"""Issue 18, items 6 and 7 in a real browser, in German, asserting what the clerk reads: Apply
without an action keeps the ticked orders; Cancel only where it applies, its confirmation naming the
skipped orders first; a payment date before the order date refused; "paid" undone from the order
page; a paid order found by the search; the customer's e-mail corrected. SCREENSHOTS=1 saves the
pages under docs/screenshots/."""

import datetime
import os
import re
from pathlib import Path

import pytest
from django.utils import timezone

from dunning.selectors import local_midnight, local_today
from tests.factories import OrderFactory, ReminderAssignmentFactory
from tests.integration.test_open_payments_browser import browser_settings, page, staff  # noqa: F401

pytestmark = [pytest.mark.browser]

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def shot(browser_page, name: str) -> None:
    if os.environ.get("SCREENSHOTS"):
        browser_page.screenshot(path=str(SHOTS / name), full_page=True)


@pytest.fixture
def shop(transactional_db, staff):  # noqa: F811
    from tests.factories import DunningConfigFactory, PaymentMethodFactory, SalesAccountFactory

    account = SalesAccountFactory(name="Webshop")
    invoice = PaymentMethodFactory(code="invoice", name="Rechnung", payment_term_days=14)
    prepayment = PaymentMethodFactory(code="prepayment", name="Vorkasse", is_prepayment=True, payment_term_days=0)
    DunningConfigFactory(sales_account=account, payment_method=invoice)
    for level in (1, 2, 3):
        ReminderAssignmentFactory(sales_account=account, level=level)
    today = local_today(timezone.now())
    old = local_midnight(today - datetime.timedelta(days=16 + 14)) + datetime.timedelta(hours=12)
    recent = local_midnight(today - datetime.timedelta(days=3)) + datetime.timedelta(hours=12)
    now = timezone.now()
    return {
        "a": OrderFactory(sales_account=account, payment_method=invoice, number="R-1001", ordered_at=old,
                          customer_name="Anna Albers"),
        "b": OrderFactory(sales_account=account, payment_method=invoice, number="R-1002", ordered_at=old,
                          customer_name="Bernd Brandt"),
        "recent": OrderFactory(sales_account=account, payment_method=invoice, number="R-1003", ordered_at=recent,
                               customer_name="Clara Conrad"),
        "flagged": OrderFactory(sales_account=account, payment_method=prepayment, number="V-2001",
                                ordered_at=old, customer_name="Dora Dietz", flagged_for_cancellation_at=now),
        "paid": OrderFactory(sales_account=account, payment_method=invoice, number="R-0815", ordered_at=old,
                             customer_name="Erika Engel", customer_email="erika@exmaple.com", paid_at=now),
        "today": today,
    }


def login(browser_page, url: str) -> None:
    browser_page.goto(url)
    browser_page.fill("#id_username", "backoffice")
    browser_page.fill("#id_password", "secret-pass-123")
    browser_page.press("#id_password", "Enter")
    browser_page.wait_for_url(re.compile(r"/orders/"))


def test_safer_bulk_actions(shop, live_server, page):  # noqa: F811
    from playwright.sync_api import expect

    login(page, live_server.url + "/orders/open-payments/")
    a, b, recent = shop["a"], shop["b"], shop["recent"]

    # Apply without an action: the page stays, the ticks stay, the hint says so
    page.check(f'input.action-select[value="{a.pk}"]')
    page.check(f'input.action-select[value="{recent.pk}"]')
    page.click("#apply-action")
    expect(page.locator("#action-missing")).to_have_text(
        "Bitte zuerst eine Aktion wählen – Ihre Auswahl bleibt erhalten.")
    expect(page.locator(".selected-count")).to_have_text("2 von 4 ausgewählt")
    assert page.locator("input.action-select:checked").count() == 2
    shot(page, "bulk-no-action-de.png")

    # Cancel: offered here (the list holds a flagged prepayment order) ...
    cancel = page.locator('#action-select option[value="cancel"]')
    assert cancel.is_enabled()
    # ... and its confirmation says first which orders are skipped and why
    page.check("#select-all")
    page.select_option("#action-select", "cancel")
    page.click("#apply-action")
    page.wait_for_url(re.compile(r"/orders/actions/"))
    expect(page.locator("#skip-summary")).to_contain_text("3 Aufträge werden übersprungen, und warum:")
    expect(page.locator("#skip-summary")).to_contain_text("kein Vorkasse-Auftrag")
    expect(page.locator("#will-change")).to_have_text("1")
    expect(page.locator("#confirm-action")).to_have_text("Aufträge stornieren: 1 Auftrag")
    skipped = page.locator("#skipped-orders tbody tr").all_inner_texts()
    assert len(skipped) == 3 and all("kein Vorkasse-Auftrag" in row for row in skipped)
    shot(page, "bulk-cancel-confirm-de.png")
    page.click("text=Nein, zurück")

    # filtered to invoices, Cancel is not offered and says why
    page.select_option("#id_payment_method", label="Rechnung")
    page.wait_for_url(re.compile(r"payment_method="))
    expect(page.locator('#action-select option[value="cancel"]')).to_be_disabled()
    expect(page.locator('#action-select option[value="cancel"]')).to_have_text(
        "Aufträge stornieren (kein markierter Vorkasse-Auftrag in dieser Liste)")

    # mark paid with a payment date before an order date: refused with the reason, nothing changed
    page.check(f'input.action-select[value="{a.pk}"]')
    page.check(f'input.action-select[value="{recent.pk}"]')
    page.select_option("#action-select", "mark_paid")
    page.click("#apply-action")
    page.wait_for_url(re.compile(r"/orders/actions/"))
    too_early = shop["today"] - datetime.timedelta(days=10)
    page.fill("#id_paid_on", too_early.isoformat())
    page.click("#confirm-action")
    recent_day = (shop["today"] - datetime.timedelta(days=3)).strftime("%d.%m.%Y")
    expect(page.locator(".errorlist")).to_have_text(
        f"Das Zahlungsdatum liegt vor dem Auftragsdatum von 1 ausgewählten Auftrag (bestellt am {recent_day}). "
        "Wählen Sie diesen oder einen späteren Tag, oder nehmen Sie den Auftrag aus der Auswahl.")
    shot(page, "bulk-paid-date-error-de.png")
    page.fill("#id_paid_on", shop["today"].isoformat())
    page.click("#confirm-action")
    page.wait_for_url(re.compile(r"/orders/open-payments/"))
    expect(page.locator(".messagelist")).to_contain_text("2 Aufträge als bezahlt markiert.")

    # undo "paid" from the order page: open again, at its level
    page.goto(live_server.url + f"/orders/{a.pk}/")
    expect(page.locator("#undo-paid")).to_contain_text("Als bezahlt markiert von backoffice")
    shot(page, "order-undo-paid-de.png")
    page.click("#undo-paid-button")
    expect(page.locator(".messagelist")).to_have_text(
        "„Bezahlt“ zurückgenommen: Der Auftrag ist wieder offen (Mahnstufe 1).")
    expect(page.locator("h1 .badge.open")).to_have_text("offen")
    assert page.locator("#undo-paid").count() == 0
    expect(page.locator("table.history").last).to_contain_text("„Bezahlt“ zurückgenommen: wieder offen")
    b.refresh_from_db()
    assert b.paid_at is None  # never selected


def test_find_any_order_and_correct_the_email(shop, live_server, page):  # noqa: F811
    from playwright.sync_api import expect

    login(page, live_server.url + "/orders/open-payments/")
    # "I have paid": the clerk types the number the customer reads out
    page.fill("#id_q", "0815")
    page.press("#id_q", "Enter")
    page.wait_for_url(re.compile(r"q=0815"))
    box = page.locator("#closed-matches")
    expect(box.locator("h2")).to_have_text("Außerdem gefunden: 1 bezahlter oder stornierter Auftrag zu „0815“")
    day = shop["today"].strftime("%d.%m.%Y")
    expect(box.locator("td.status")).to_have_text(f"bezahlt am {day}")
    expect(page.locator("td.empty")).to_have_text("Keine offenen Aufträge zu diesen Filtern.")
    shot(page, "search-paid-order-de.png")
    box.locator("a", has_text="R-0815").click()
    page.wait_for_url(re.compile(rf"/orders/{shop['paid'].pk}/"))
    expect(page.locator("h1")).to_contain_text("bezahlt")

    # the customer spells the address: a typo is refused, the right one saved and recorded
    page.click("#email-edit summary")
    page.fill("#id_customer_email", "erika@example")  # the browser lets it through, the server does not
    page.click("#email-save")
    expect(page.locator("#email-edit .errorlist")).to_have_text("Geben Sie eine gültige E-Mail-Adresse ein.")
    shot(page, "order-email-error-de.png")
    page.fill("#id_customer_email", "erika@example.com")
    page.click("#email-save")
    expect(page.locator(".messagelist")).to_have_text(
        "Die E-Mail-Adresse wurde korrigiert; die nächste Mahnung geht an erika@example.com.")
    expect(page.locator("#customer-email")).to_contain_text("erika@example.com")
    expect(page.locator("table.history").last).to_contain_text("E-Mail-Adresse des Kunden korrigiert")
    shot(page, "order-email-corrected-de.png")


@pytest.fixture
def collection(shop):
    """Two orders that have had all three reminders (written before `page` starts Playwright)."""
    a = shop["a"]
    last = timezone.now() - datetime.timedelta(days=8)
    for number, name in (("R-3001", "=HYPERLINK(\"http://x\")"), ("R-3002", "Gustav Groß")):
        OrderFactory(sales_account=a.sales_account, payment_method=a.payment_method, number=number,
                     customer_name=name, ordered_at=a.ordered_at - datetime.timedelta(days=40), reminders_sent=3,
                     last_reminder_at=last)
    return shop


def test_completed_tab_exports_for_collection(collection, live_server, page):  # noqa: F811
    import io

    from openpyxl import load_workbook
    from playwright.sync_api import expect

    login(page, live_server.url + "/orders/open-payments/?dunning_level=completed")
    expect(page.locator("#next-step")).to_contain_text(
        "Nächster Schritt: Diese 2 Aufträge haben alle drei Mahnungen erhalten und sind weiterhin unbezahlt.")
    shot(page, "completed-next-step-de.png")
    with page.expect_download() as download:
        page.click("#export-collection-xlsx")
    data = Path(download.value.path()).read_bytes()
    assert download.value.suggested_filename == f"offene-zahlungen-{collection['today'].isoformat()}.xlsx"
    rows = list(load_workbook(io.BytesIO(data)).active.iter_rows(values_only=True))
    assert rows[0][:3] == ("Auftragsnummer", "Auftragsdatum", "Kunde")
    assert sorted(row[2] for row in rows[1:]) == ["'=HYPERLINK(\"http://x\")", "Gustav Groß"]
    assert {row[12] for row in rows[1:]} == {"Alle Mahnungen versandt"}
