"""Issue 18, items 6 and 7 through the views: payment dates refused with a form error, the typed
count above 500 orders, Cancel only where it applies with the skipped orders named up front,
Apply without an action keeping the selection, undoing a manual "mark paid", correcting the
customer's e-mail, and the search finding paid and cancelled orders."""

import datetime
import re

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from common.dates import local_midnight
from orders import services
from orders.models import Order, OrderEvent
from tests.factories import OrderFactory

ACTIONS = "/orders/actions/"
URL = "/orders/open-payments/"


def text(response) -> str:
    """The page as a reader sees it: tags stripped, whitespace collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# --- payment date ----------------------------------------------------------------------------------


def test_payment_date_before_an_order_date_is_a_form_error(bo_client, place, today):
    old = place(30, number="OLD")
    young = place(0, number="YOUNG")  # ordered 14 days ago
    paid_on = today - datetime.timedelta(days=20)
    response = bo_client.post(ACTIONS, {"action": "mark_paid", "ids": [old.pk, young.pk],
                                        "paid_on": paid_on.isoformat()})
    assert response.status_code == 400
    ordered = (today - datetime.timedelta(days=14)).strftime("%d.%m.%Y")
    assert (f"Das Zahlungsdatum liegt vor dem Auftragsdatum von 1 ausgewählten Auftrag (bestellt am {ordered})"
            in text(response))
    assert not Order.objects.filter(paid_at__isnull=False).exists()
    assert not OrderEvent.objects.exists()
    # the ticked orders are still the selection of the form
    assert f'name="ids" value="{young.pk}"' in response.content.decode()
    # on the order's day it is accepted
    response = bo_client.post(ACTIONS, {"action": "mark_paid", "ids": [old.pk, young.pk],
                                        "paid_on": (today - datetime.timedelta(days=14)).isoformat()}, follow=True)
    assert "2 Aufträge als bezahlt markiert." in messages_of(response)


def test_payment_date_in_the_future_is_a_form_error(bo_client, place, today):
    order = place(10)
    response = bo_client.post(ACTIONS, {"action": "mark_paid", "ids": [order.pk],
                                        "paid_on": (today + datetime.timedelta(days=1)).isoformat()})
    assert response.status_code == 400
    assert "Das Zahlungsdatum darf nicht in der Zukunft liegen." in text(response)
    order.refresh_from_db()
    assert order.paid_at is None


# --- more than 500 orders ----------------------------------------------------------------------------


def test_more_than_500_orders_need_their_number_typed(bo_client, place, account, invoice, today):
    ordered = local_midnight(today - datetime.timedelta(days=30))
    Order.objects.bulk_create([
        Order(sales_account=account, payment_method=invoice, number=f"M{i:04d}", customer_name="Kunde",
              customer_email="k@example.com", total=10, ordered_at=ordered) for i in range(501)])
    params = {"action": "block", "select_across": "1", "reason": "Inkasso"}
    response = bo_client.get(ACTIONS, params)
    page = text(response)
    assert "501 Aufträge ausgewählt." in page
    assert "Zur Bestätigung die Anzahl der Aufträge eingeben (501)" in page
    response = bo_client.post(ACTIONS, params)  # not typed
    assert response.status_code == 400
    assert "Dieses Feld ist zwingend erforderlich." in text(response)
    response = bo_client.post(ACTIONS, {**params, "confirm_count": "500"})
    assert response.status_code == 400
    assert "Geben Sie 501 ein, die Anzahl der ausgewählten Aufträge, um zu bestätigen." in text(response)
    assert not Order.objects.filter(dunning_blocked=True).exists()
    response = bo_client.post(ACTIONS, {**params, "confirm_count": " 501 "}, follow=True)
    assert "Mahnung für 501 Aufträge gesperrt." in messages_of(response)


def test_500_orders_or_fewer_need_no_typing(bo_client, place):
    order = place(10)
    response = bo_client.get(ACTIONS, {"action": "block", "ids": [order.pk]})
    assert 'name="confirm_count"' not in response.content.decode()


# --- cancel: only where it applies, skipped orders up front ------------------------------------------


def test_cancel_is_offered_only_when_the_list_holds_a_flagged_prepayment_order(bo_client, place, prepayment,
                                                                              account):
    place(10)
    html = bo_client.get(URL).content.decode()
    assert re.search(r'<option value="cancel" disabled>Aufträge stornieren \(kein markierter Vorkasse-Auftrag',
                     html)
    OrderFactory(sales_account=account, payment_method=prepayment, flagged_for_cancellation_at=timezone.now())
    html = bo_client.get(URL).content.decode()
    assert '<option value="cancel">Aufträge stornieren</option>' in html
    html = bo_client.get(URL, {"flagged": "false"}).content.decode()
    assert '<option value="cancel" disabled>' in html


def test_cancel_confirmation_names_the_skipped_orders_first(bo_client, place, prepayment, account):
    flagged = OrderFactory(sales_account=account, payment_method=prepayment, number="V1",
                           flagged_for_cancellation_at=timezone.now())
    unflagged = OrderFactory(sales_account=account, payment_method=prepayment, number="V2")
    invoice_order = place(10, number="I1")
    response = bo_client.get(ACTIONS, {"action": "cancel", "ids": [flagged.pk, unflagged.pk, invoice_order.pk]})
    page = text(response)
    # up front: before the form and its button
    summary = page.index("2 Aufträge werden übersprungen, und warum:")
    assert summary < page.index("Aufträge stornieren: 1 Auftrag Nein, zurück")
    assert "kein Vorkasse-Auftrag 1" in page and "nicht zur Stornierung markiert 1" in page
    changed, skipped = page.split("Dieser Auftrag wird geändert")[1].split("Diese 2 Aufträge werden übersprungen")
    assert "V1" in changed and "V2" not in changed and "I1" not in changed
    assert re.search(r"I1 .* kein Vorkasse-Auftrag", skipped)
    assert re.search(r"V2 .* nicht zur Stornierung markiert", skipped)


def test_confirmation_queries_do_not_grow_with_the_selection(bo_client, place):
    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert bo_client.get(ACTIONS, {"action": "clear_flag", "select_across": "1"}).status_code == 200
        return len(ctx.captured_queries)

    for i in range(3):
        place(10, number=f"F{i}", flagged_for_cancellation_at=timezone.now() if i % 2 else None)
    few = queries()
    for i in range(60):
        place(10, number=f"M{i}", flagged_for_cancellation_at=timezone.now() if i % 2 else None)
    assert queries() == few <= 8


# --- Apply without an action ---------------------------------------------------------------------------


def test_apply_without_an_action_keeps_the_selection(bo_client, place):
    a, b, c = place(10, number="A"), place(10, number="B"), place(10, number="C")
    response = bo_client.get(ACTIONS, {"action": "", "ids": [a.pk, c.pk], "blocked": "false",
                                       "next": "/orders/open-payments/?blocked=false"})
    assert response.status_code == 302
    page = bo_client.get(response.url)
    html = page.content.decode()
    assert f'value="{a.pk}" class="action-select" checked' in html
    assert f'value="{c.pk}" class="action-select" checked' in html
    assert f'value="{b.pk}" class="action-select" aria-label' in html
    assert "Bitte zuerst eine Aktion wählen – Ihre Auswahl bleibt erhalten." in text(page)
    assert 'id="action-missing" role="alert">' in html  # shown, not hidden
    # the filter is kept, and the selection is not carried into the links of the page
    assert 'name="blocked" value="false"' in html
    assert 'name="next" value="/orders/open-payments/?blocked=false"' in html
    assert "missing_action" not in html.split('id="changelist-form"')[1].split("<tbody>")[0]


# --- undo "mark paid" ------------------------------------------------------------------------------------


def test_mark_paid_can_be_undone_from_the_order_page(bo_client, place, today):
    order = place(30, sent=2, number="U1")  # level 3 is due: two reminders sent
    page_url = f"/orders/{order.pk}/"
    before = text(bo_client.get(page_url))
    assert "Mahnstufe 3" in before
    bo_client.post(ACTIONS, {"action": "mark_paid", "ids": [order.pk], "paid_on": today.isoformat(),
                             "next": page_url})
    page = text(bo_client.get(page_url))
    assert "Als bezahlt markiert von backoffice" in page
    assert "„Bezahlt“ zurücknehmen: Auftrag wieder öffnen" in page
    response = bo_client.post(f"/orders/{order.pk}/undo-paid/", follow=True)
    assert "„Bezahlt“ zurückgenommen: Der Auftrag ist wieder offen (Mahnstufe 3)." in messages_of(response)
    order.refresh_from_db()
    assert order.paid_at is None and order.reminders_sent == 2
    page = text(response)
    assert "„Bezahlt“ zurücknehmen" not in page
    assert "„Bezahlt“ zurückgenommen: wieder offen" in page  # the history
    event = OrderEvent.objects.filter(order=order).latest("id")
    assert event.action == "mark_paid_undone" and event.user.username == "backoffice"
    assert event.details["paid_at"]
    # a second undo is refused: nothing to undo
    response = bo_client.post(f"/orders/{order.pk}/undo-paid/", follow=True)
    assert any("Nur eine von Hand als bezahlt markierte Zahlung" in m for m in messages_of(response))


def test_a_payment_by_bank_cannot_be_undone_here(bo_client, place, backoffice_user):
    order = place(10)
    now = timezone.now()
    services.orders_mark_paid_by_bank(paid={order.pk: (now, {"payment": 1})}, user=None, now=now)
    page = text(bo_client.get(f"/orders/{order.pk}/"))
    assert "zurücknehmen" not in page
    response = bo_client.post(f"/orders/{order.pk}/undo-paid/", follow=True)
    assert any("Nur eine von Hand" in m for m in messages_of(response))
    order.refresh_from_db()
    assert order.paid_at is not None


def test_undo_needs_post_and_the_back_office(client, bo_client, outsider_user, place):
    order = place(10)
    assert bo_client.get(f"/orders/{order.pk}/undo-paid/").status_code == 405
    client.force_login(outsider_user)
    assert client.post(f"/orders/{order.pk}/undo-paid/").status_code == 403


def test_order_page_queries_with_the_undo(bo_client, place, today):
    order = place(10)
    bo_client.post(ACTIONS, {"action": "mark_paid", "ids": [order.pk], "paid_on": today.isoformat()})
    with CaptureQueriesContext(connection) as ctx:
        assert bo_client.get(f"/orders/{order.pk}/").status_code == 200
    assert len(ctx.captured_queries) <= 10


# --- correct the e-mail ---------------------------------------------------------------------------------


def test_staff_correct_the_customer_email(bo_client, place):
    order = place(10, customer_email="kunde@exmaple.com")
    response = bo_client.post(f"/orders/{order.pk}/email/", {"customer_email": " kunde@example.com "}, follow=True)
    assert "Die E-Mail-Adresse wurde korrigiert; die nächste Mahnung geht an kunde@example.com." in \
        messages_of(response)
    order.refresh_from_db()
    assert order.customer_email == "kunde@example.com"
    event = OrderEvent.objects.get(order=order)
    assert event.action == "email_changed"
    assert event.details == {"old": "kunde@exmaple.com", "new": "kunde@example.com"}
    assert "E-Mail-Adresse des Kunden korrigiert" in text(response)
    # the same again: nothing written
    response = bo_client.post(f"/orders/{order.pk}/email/", {"customer_email": "kunde@example.com"}, follow=True)
    assert "Die E-Mail-Adresse war bereits diese; es wurde nichts geändert." in messages_of(response)
    assert OrderEvent.objects.filter(order=order).count() == 1


def test_an_invalid_email_is_a_form_error(bo_client, place):
    order = place(10, customer_email="kunde@example.com")
    for bad, message in [("kein-at-zeichen", "Geben Sie eine gültige E-Mail-Adresse ein."),
                         ("", "Dieses Feld ist zwingend erforderlich."),
                         ("a@b.de\r\nBcc: x@y.de", "Geben Sie eine gültige E-Mail-Adresse ein.")]:
        response = bo_client.post(f"/orders/{order.pk}/email/", {"customer_email": bad})
        assert response.status_code == 400
        assert message in text(response)
        assert 'id="email-edit" open' in response.content.decode()
    order.refresh_from_db()
    assert order.customer_email == "kunde@example.com"
    assert not OrderEvent.objects.exists()


# --- find any order ---------------------------------------------------------------------------------------


def test_search_also_finds_paid_and_cancelled_orders(bo_client, place, today):
    now = timezone.now()
    place(10, number="4711-OPEN", customer_name="Erika Muster")
    paid = place(10, number="4711-PAID", customer_name="Erika Muster", paid_at=now)
    cancelled = place(10, number="4711-CANC", customer_name="Erika Muster", cancelled_at=now)
    place(10, number="9999-PAID", customer_name="Max Other", paid_at=now)
    response = bo_client.get(URL, {"q": "erika"})
    page = text(response)
    assert "Außerdem gefunden: 2 bezahlte oder stornierte Aufträge zu „erika“" in page
    day = today.strftime("%d.%m.%Y")
    assert f"4711-PAID bezahlt am {day}" in page
    assert f"4711-CANC storniert am {day}" in page
    assert "9999-PAID" not in page
    html = response.content.decode()
    assert f'<a href="/orders/{paid.pk}/">4711-PAID</a>' in html
    assert f'<a href="/orders/{cancelled.pk}/">4711-CANC</a>' in html
    # the open list itself stays open orders only
    assert re.findall(r'<td class="number"[^>]*><a href="/orders/\d+/">([^<]+)</a>',
                      html.split('id="changelist-form"')[1]) == ["4711-OPEN"]
    # without a search nothing closed is shown, and a search for a paid order alone says so
    assert "Außerdem gefunden" not in text(bo_client.get(URL))
    page = text(bo_client.get(URL, {"q": "9999"}))
    assert "Außerdem gefunden: 1 bezahlter oder stornierter Auftrag zu „9999“" in page
    assert "Keine offenen Aufträge zu diesen Filtern." in page and "9999-PAID bezahlt am" in page


def test_search_queries_do_not_grow_with_closed_matches(bo_client, place):
    now = timezone.now()

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert bo_client.get(URL, {"q": "Muster"}).status_code == 200
        return len(ctx.captured_queries)

    place(10, number="O1", customer_name="Muster")
    place(10, number="P1", customer_name="Muster", paid_at=now)
    bo_client.get(URL, {"q": "Muster"})
    few = queries()
    for i in range(30):
        place(10, number=f"P{i + 2}", customer_name="Muster", paid_at=now)
    assert queries() == few <= 13


def test_a_corrected_address_clears_the_bounce_badge(bo_client, place):
    from dunning.models import Reminder
    from tests.factories import ReminderFactory

    order = place(10, customer_email="alt@example.com")
    ReminderFactory(order=order, level=1, recipient="alt@example.com", status=Reminder.Status.BOUNCED)
    assert "Adresse unzustellbar" in text(bo_client.get(URL))
    bo_client.post(f"/orders/{order.pk}/email/", {"customer_email": "neu@example.com"})
    page = text(bo_client.get(URL))
    assert "Adresse unzustellbar" not in page
