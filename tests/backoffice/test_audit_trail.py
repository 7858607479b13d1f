"""The order page's history in words (issue 18, item 5): every action has a label and a sentence
built from the stored details, formatted for the language; old rows (missing keys, an action no
longer declared) still read; the import path writes what the page then says."""

import datetime
import html as html_lib
import re

import pytest
from django.core.management import call_command
from django.utils import timezone

from orders.audit import SENTENCES
from orders.models import Order, OrderEvent
from tests.factories import berlin

A = OrderEvent.Action

# (action, details as its writer stores them, the German sentence, the English one)
CASES = [
    (A.IMPORTED, {"file": "long.csv", "row": 2}, "Importiert aus long.csv, Zeile 2", "Imported from long.csv, row 2"),
    (A.IMPORTED, {"file": "api", "row": 3}, "Importiert über die API", "Imported through the API"),
    (A.IMPORT_UPDATED, {"file": "long.csv", "row": 1234, "fields": ["paid_at", "total"]},
     "Aktualisiert durch den Import aus long.csv, Zeile 1.234, geändert: bezahlt am, Summe",
     "Updated by the import from long.csv, row 1,234, changed: paid at, total"),
    (A.MARKED_PAID, {"paid_at": "2026-11-20T23:30:00+00:00"}, "Bezahlt am 21.11.2026", "Paid on 21 Nov 2026"),
    (A.DUNNING_BLOCKED, {"reason": "Ratenzahlung"}, "Grund: Ratenzahlung", "Reason: Ratenzahlung"),
    (A.CANCELLED, {"release_reservation": True}, "Lagerreservierung freigegeben", "Stock reservation released"),
    (A.CANCELLED, {"release_reservation": False}, "Lagerreservierung bleibt bestehen", "Stock reservation kept"),
    (A.REMINDER_MARKED_SENT, {"level": 2, "reminder": 7}, "Mahnstufe 2", "Dunning level 2"),
    (A.ADMIN_CHANGED, {"fields": ["customer_email"]}, "Felder: Kunden-E-Mail", "Fields: customer e-mail"),
    (A.REMINDER_SENT, {"level": 1, "trigger": "automatic", "reminder": 9}, "Mahnstufe 1, automatisch",
     "Dunning level 1, automatically"),
    (A.REMINDER_SENT, {"level": 3, "trigger": "manual", "reminder": 10, "demo": True},
     "Mahnstufe 3, von Hand (Demodaten)", "Dunning level 3, by hand (demo data)"),
    (A.REMINDER_BOUNCED, {"reminder": 9, "level": 1, "recipient": "erika@example.com", "previous_status": "sent",
                          "event_type": "bounced", "provider": "postmark", "event_id": "e1",
                          "occurred_at": "2026-11-21T08:05:00+00:00", "description": "Mailbox full"},
     "Mahnstufe 1, an erika@example.com, gemeldet von Postmark, am 21.11.2026, 09:05: Mailbox full",
     "Dunning level 1, to erika@example.com, reported by Postmark, on 21 Nov 2026, 09:05: Mailbox full"),
    (A.PAYMENT_MATCHED, {"payment": 4, "amount": "1249.90", "currency": "EUR", "booked_on": "2026-11-19",
                         "matched_by": "auto", "source_id": "x"},
     "1.249,90 €, gebucht am 19.11.2026, automatisch zugeordnet",
     "€1,249.90 booked on 19 Nov 2026, assigned automatically"),
    (A.PAYMENT_UNASSIGNED, {"payment": 4, "amount": "12.00", "currency": "CHF", "booked_on": "2026-11-19",
                            "matched_by": "manual", "source_id": "x"},
     "12,00 CHF, gebucht am 19.11.2026", "CHF12.00 booked on 19 Nov 2026"),
    (A.PAID_BY_BANK, {"payment": 4, "paid": "1249.90", "paid_at": "2026-11-18T23:00:00+00:00"},
     "Zahlungseingang: 1.249,90 €, bezahlt am 19.11.2026", "Payments received: €1,249.90, paid on 19 Nov 2026"),
    (A.REOPENED_BY_UNASSIGN, {"payment": 4, "paid": "200"}, "Die Zahlungen decken nur noch 200,00 €",
     "Payments now cover only €200.00"),
    (A.AUTO_FLAG, {"rule": "cancel_after_days"}, "Vorkasse nicht innerhalb der Stornofrist bezahlt",
     "Prepayment not received within the days set for cancellation"),
    (A.AUTO_CANCEL_AND_RELEASE, {"rule": "cancel_after_days"},
     "Vorkasse nicht innerhalb der Stornofrist bezahlt, Lagerreservierung freigegeben",
     "Prepayment not received within the days set for cancellation, stock reservation released"),
]


def history(html: str) -> str:
    """The text of the history table, tags removed and whitespace collapsed."""
    table = html.split('id="audit-trail"')[1].split("</table>")[0]
    return html_lib.unescape(" ".join(re.sub(r"<[^>]+>", " ", table).split())).replace("\xa0", " ")


def test_every_declared_action_has_a_sentence():
    assert set(SENTENCES) == set(A.values)


@pytest.fixture
def order_with_events(place, backoffice_user):
    order = place(16, number="H-1")
    at = timezone.now()
    for i, (action, details, _de, _en) in enumerate(CASES):
        OrderEvent.objects.create(order=order, action=action, details=details, at=at - datetime.timedelta(minutes=i),
                                  user=backoffice_user if i % 2 else None)
    return order


def test_the_history_reads_as_sentences_in_german(bo_client, order_with_events):
    text = history(bo_client.get(f"/orders/{order_with_events.pk}/").content.decode())
    for _action, _details, german, _english in CASES:
        assert german in text, german
    for label in ("Importiert", "Mahnung versendet", "Bankzahlung zugeordnet",
                  "Zur Stornierung markiert (automatisch)"):
        assert label in text
    # no stored keys or codes leak: no "trigger: manual", "rule: cancel_after_days", "reminder: 9"
    for leak in ("trigger", "manual", "cancel_after_days", "reminder:", "rule:", "{", "True", "postmark"):
        assert leak not in text, leak


def test_the_history_reads_as_sentences_in_english(bo_client, order_with_events):
    bo_client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    text = history(bo_client.get(f"/orders/{order_with_events.pk}/").content.decode())
    for _action, _details, _german, english in CASES:
        assert english in text, english


def test_old_rows_still_read(bo_client, place):
    """Rows without the details later versions write, with odd values, and with an action that is
    no longer declared: labelled, never a 500, no code shown as if it were a sentence."""
    order = place(16)
    at = timezone.now()
    OrderEvent.objects.bulk_create([
        OrderEvent(order=order, action=A.REMINDER_SENT, details={}, at=at),
        OrderEvent(order=order, action=A.PAYMENT_MATCHED, details={"amount": "abc", "booked_on": "gestern"}, at=at),
        OrderEvent(order=order, action=A.MARKED_PAID, details=["not", "a", "mapping"], at=at),
        OrderEvent(order=order, action="moved_to_archive", details={"box": "B-7"}, at=at),
    ])
    response = bo_client.get(f"/orders/{order.pk}/")
    assert response.status_code == 200
    text = history(response.content.decode())
    assert "Mahnung versendet" in text and "Bankzahlung zugeordnet" in text and "abc" in text
    assert "Moved to archive" in text and "B-7" in text


def test_many_events_cost_no_extra_queries(bo_client, place, django_assert_num_queries):
    few, many = place(16, number="Q-1"), place(16, number="Q-2")
    at = timezone.now()
    for order, n in ((few, 1), (many, 30)):
        OrderEvent.objects.bulk_create([OrderEvent(order=order, action=A.PAYMENT_MATCHED, at=at, details={
            "amount": "10.00", "currency": "EUR", "booked_on": "2026-11-19", "matched_by": "auto"})] * n)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as first:
        bo_client.get(f"/orders/{few.pk}/")
    with CaptureQueriesContext(connection) as second:
        bo_client.get(f"/orders/{many.pk}/")
    assert len(second) == len(first)


def test_an_imported_order_says_where_it_came_from(bo_client, account, invoice, tmp_path, now):
    path = tmp_path / "long.csv"
    path.write_text("number;sales_account;payment_method;customer_name;customer_email;language;total;currency;"
                    "ordered_at;paid_at;cancelled_at\n"
                    f"L-1;{account.name};{invoice.code};Erika Mustermann;erika@example.com;;1.249,90;EUR;"
                    "05.11.2026;;\n", encoding="utf-8")
    call_command("import_orders", str(path), stdout=None)
    order = Order.objects.get(number="L-1")
    assert order.ordered_at == berlin(2026, 11, 5)
    text = history(bo_client.get(f"/orders/{order.pk}/").content.decode())
    assert "Importiert aus long.csv, Zeile 2" in text
