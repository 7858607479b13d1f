"""The unmatched page's split of one payment over several orders of one customer and its undo,
"not an order payment" and its undo, each audited; the "partly paid" label on the overview; the
parser's problems in German on the upload page. Through the pages, as staff use them."""

from decimal import Decimal
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dunning.selectors import claim_payments_by_order
from orders.models import OrderEvent
from payments.models import Payment, PaymentEvent
from payments.selectors import unmatched_payments
from payments.services import payments_rematch

FIXTURES = Path(__file__).parent.parent / "payments" / "fixtures"
CBK = FIXTURES / "camt053_commerzbank_001_04.xml"  # "GUTSCHRIFT A100009/A100010 DANKE": 10.00 EUR
SPK = FIXTURES / "camt053_sparkasse_001_02.xml"
Action = OrderEvent.Action


def upload(client, path=CBK, name=None, data=None):
    f = SimpleUploadedFile(name or path.name, data if data is not None else path.read_bytes(),
                           content_type="text/xml")
    return client.post("/payments/upload/", {"files": [f]})


def act(client, payment, follow=True, **data):
    return client.post(f"/payments/{payment.pk}/action/", data, follow=follow)


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def two_in_one(client, place, *, second_total="8.00", second_email="kunde@example.com"):
    first = place(10, number="A100009", total=Decimal("5.00"), customer_email="kunde@example.com")
    second = place(10, number="A100010", total=Decimal(second_total), customer_email=second_email)
    upload(client)
    return first, second, Payment.objects.get(reference__contains="A100009/A100010")


def test_split_over_two_orders_of_one_customer_then_undo(bo_client, place, backoffice_user):
    first, second, payment = two_in_one(bo_client, place)
    assert payment.order is None and payment in unmatched_payments()  # two orders named: unmatched
    page = bo_client.get("/payments/unmatched/").content.decode()
    assert "Auf mehrere Aufträge aufteilen" in page and 'value="A100009"' in page  # prefilled from the texts

    response = act(bo_client, payment, action="split", split_order=["A100009", "A100010", ""],
                   split_amount=["5,00", "5.00", ""])
    assert messages_of(response) == ["Die Zahlung wurde auf 2 Aufträge aufgeteilt."]
    first.refresh_from_db(), second.refresh_from_db(), payment.refresh_from_db()
    assert first.paid_at is not None  # 5.00 of 5.00
    assert second.paid_at is None and second.outstanding == Decimal("3.00")  # 5.00 of 8.00
    assert payment.split_at is not None and payment.split_by == backoffice_user and payment.order is None
    assert payment not in unmatched_payments()
    parts = list(payment.parts.order_by("order_id"))
    assert [(p.order_id, p.amount, p.matched_by) for p in parts] == [
        (first.pk, Decimal("5.00"), Payment.MatchedBy.MANUAL), (second.pk, Decimal("5.00"), Payment.MatchedBy.MANUAL)]
    # the claim reads the parts like any payment of the order
    assert claim_payments_by_order([second.pk]) == {second.pk: [(payment.booked_on, Decimal("5.00"))]}
    for order in (first, second):
        event = order.events.get(action=Action.PAYMENT_PART_ASSIGNED)
        assert event.user == backoffice_user and event.details["split_of"] == payment.pk
    split = PaymentEvent.objects.get(payment=payment)
    assert split.action == PaymentEvent.Action.SPLIT and split.user == backoffice_user
    assert [p["order"] for p in split.details["parts"]] == ["A100009", "A100010"]
    page = bo_client.get("/payments/unmatched/").content.decode()
    assert f'id="split-{payment.pk}"' in page and "Aufteilung aufheben" in page
    detail = bo_client.get(f"/orders/{second.pk}/").content.decode()
    assert "Teil einer Aufteilung" in detail and 'value="unsplit"' in detail

    # the same statement again adds nothing, the dunning run's re-match leaves the split alone
    again = upload(bo_client).context["result"]
    assert again.payments == 0 and again.duplicates == again.entries > 0
    assert payments_rematch(now=payment.split_at) == 0

    # undo from the order page: every part comes off, the paid order reopens, the payment waits again
    part = second.payments.get()
    response = bo_client.post(f"/payments/{part.pk}/action/", {"action": "unsplit", "from": "order"})
    assert response.status_code == 302 and response.url == f"/orders/{second.pk}/"
    first.refresh_from_db(), second.refresh_from_db(), payment.refresh_from_db()
    assert first.paid_at is None and second.outstanding == Decimal("8.00")
    assert not payment.parts.exists() and payment.split_at is None and payment in unmatched_payments()
    assert payment.no_auto_match  # staff decide from now on
    assert first.events.filter(action=Action.PAYMENT_SPLIT_UNDONE).count() == 1
    assert first.events.filter(action=Action.REOPENED_BY_UNASSIGN).count() == 1
    assert not second.events.filter(action=Action.REOPENED_BY_UNASSIGN).exists()  # it was never paid
    undone = PaymentEvent.objects.get(payment=payment, action=PaymentEvent.Action.SPLIT_UNDONE)
    assert undone.user == backoffice_user and len(undone.details["parts"]) == 2
    # and it can be split again (other amounts)
    response = act(bo_client, payment, action="split", split_order=["A100009", "A100010"],
                   split_amount=["2,00", "8,00"])
    second.refresh_from_db()
    assert second.paid_at is not None and payment.parts.count() == 2


def test_split_refusals_are_messages_and_write_nothing(bo_client, place, now_real):
    first, second, payment = two_in_one(bo_client, place, second_email="jemand@example.com")
    other = place(10, number="Z-1", total=Decimal("5.00"), customer_email="kunde@example.com",
                  cancelled_at=now_real)
    cases = [
        ((["A100009", "A100010"], ["5,00", "5,00"]), "Eine Zahlung wird nur auf Aufträge eines Kunden aufgeteilt"),
        ((["A100009", "A100009"], ["5,00", "5,00"]), "Jeder Auftrag darf in einer Aufteilung nur einmal vorkommen."),
        ((["A100009", ""], ["10,00", ""]), "Eine Aufteilung braucht mindestens zwei Aufträge."),
        ((["A100009", "A100010"], ["5,00", "4,00"]),
         "Die Teile ergeben zusammen 9,00 EUR, die Zahlung beträgt 10,00 EUR."),
        ((["A100009", "A100010"], ["5,00", "fünf"]), "Geben Sie für jeden Teil eine Auftragsnummer und einen Betrag"),
        ((["A100009", "X-404"], ["5,00", "5,00"]), "Geben Sie die Nummer genau eines Auftrags ein (X-404)."),
        ((["A100009", "Z-1"], ["5,00", "5,00"]), "Auftrag Z-1 ist storniert."),
        ((["A100009", "A100010"], ["10,00", "0,00"]), "Jeder Teil muss ein Betrag über null"),
    ]
    for (numbers, amounts), message in cases:
        response = act(bo_client, payment, action="split", split_order=numbers, split_amount=amounts)
        assert response.status_code == 200
        assert any(m.startswith(message) for m in messages_of(response)), (message, messages_of(response))
    payment.refresh_from_db()
    assert payment.split_at is None and not payment.parts.exists() and payment in unmatched_payments()
    assert not PaymentEvent.objects.exists() and not OrderEvent.objects.filter(
        order__in=[first, second, other], action=Action.PAYMENT_PART_ASSIGNED).exists()
    # a payment assigned to one order is not split, and an assigned one is not dismissed
    act(bo_client, payment, action="assign", order="A100009")
    response = act(bo_client, payment, action="split", split_order=["A100009", "A100010"], split_amount=["5", "5"])
    assert messages_of(response) == ["Diese Zahlung ist bereits einem Auftrag zugeordnet."]


def test_not_an_order_payment_and_back(bo_client, place, backoffice_user):
    upload(bo_client, SPK)  # A100002 (20.00) and one more wait
    payment = Payment.objects.get(reference__contains="A100002")
    assert bo_client.get("/payments/unmatched/count/").json() == {"unmatched": 2}
    response = act(bo_client, payment, action="dismiss")
    assert messages_of(response) == ["Die Zahlung wurde als „Keine Auftragszahlung“ markiert."]
    assert f'id="dismissed-{payment.pk}"' in response.content.decode()
    assert bo_client.get("/payments/unmatched/count/").json() == {"unmatched": 1}
    response = act(bo_client, payment, action="undismiss")
    assert messages_of(response) == ["Die Zahlung steht wieder bei den nicht zugeordneten Zahlungen."]
    payment.refresh_from_db()
    assert payment.dismissed_at is None and payment in unmatched_payments()
    assert bo_client.get("/payments/unmatched/count/").json() == {"unmatched": 2}
    events = list(PaymentEvent.objects.filter(payment=payment).order_by("id"))
    assert [(e.action, e.user) for e in events] == [(PaymentEvent.Action.DISMISSED, backoffice_user),
                                                    (PaymentEvent.Action.UNDISMISSED, backoffice_user)]
    assert events[1].details["dismissed_by"] == backoffice_user.pk
    response = act(bo_client, payment, action="undismiss")  # not dismissed (any more): a message
    assert messages_of(response) == ["Diese Zahlung ist nicht als „Keine Auftragszahlung“ markiert."]
    assert PaymentEvent.objects.filter(payment=payment).count() == 2


def test_overview_labels_partly_paid_orders_with_constant_queries(bo_client, place, now_real):
    partly = place(10, number="A100002", total=Decimal("49.90"))  # SPK pays 20.00 of it
    place(10, number="P-0")
    upload(bo_client, SPK)
    url = "/orders/open-payments/"
    page = bo_client.get(url).content.decode()
    assert page.count("teilweise bezahlt") == 1
    assert 'teilweise bezahlt<br><span class="outstanding">29,90\xa0€ offen</span>' in page
    assert "Bisher bezahlt: 20,00\xa0€" in page
    with CaptureQueriesContext(connection) as few:
        bo_client.get(url)
    for i in range(6):  # more partly paid orders on the page: the same number of queries
        order = place(10, number=f"P-{i + 1}", total=Decimal("30.00"))
        Payment.objects.create(order=order, amount=Decimal("10.00"), currency="EUR", booked_on=now_real.date(),
                               source_id=f"test:{i}", matched_by=Payment.MatchedBy.MANUAL, matched_at=now_real)
    with CaptureQueriesContext(connection) as many:
        page = bo_client.get(url).content.decode()
    assert page.count("teilweise bezahlt") == 7
    assert len(few.captured_queries) == len(many.captured_queries)
    partly.refresh_from_db()
    assert partly.paid_at is None and partly.outstanding == Decimal("29.90")


def test_upload_problems_are_german_on_the_page_and_english_in_the_command(bo_client, db, tmp_path, capsys):
    broken = SPK.read_bytes().replace(b">20.00<", b">20,00<")
    response = upload(bo_client, SPK, name="kaputt.xml", data=broken)
    assert response.status_code == 400
    assert ("Nichts wurde importiert: kaputt.xml: Buchung 3: ungültiger Betrag &#x27;20,00&#x27; "
            "(Dezimaltrennzeichen ist der Punkt)") in response.content.decode()
    response = upload(bo_client, SPK, name="leer.xml", data=b"<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>")
    assert "leer.xml: XML mit Dokumenttyp-Deklaration (DTD) oder Entitäten wird abgelehnt" in response.content.decode()
    path = tmp_path / "kaputt.xml"
    path.write_bytes(broken)
    with pytest.raises(SystemExit):
        call_command("import_statement", str(path))
    assert capsys.readouterr().err.strip().splitlines() == [
        "kaputt.xml: entry 3: invalid amount '20,00' (a dot is the decimal separator)"]
    assert not Payment.objects.exists()


def test_unmatched_page_queries_do_not_grow_with_payments(bo_client, place, now_real):
    def add(prefix: str, n: int) -> None:
        for i in range(n):
            place(10, number=f"{prefix}{i}", customer_name=f"Kunde {prefix}{i}", total=Decimal("12.00"))
            Payment.objects.create(amount=Decimal("12.00"), currency="EUR", booked_on=now_real.date(),
                                   source_id=f"q:{prefix}{i}", reference=f"Auftrag {prefix}{i} / {prefix}X{i}",
                                   counterparty_name=f"Kunde {prefix}{i}")

    add("F", 2)
    bo_client.get("/payments/unmatched/")
    with CaptureQueriesContext(connection) as few:
        bo_client.get("/payments/unmatched/")
    add("M", 12)
    with CaptureQueriesContext(connection) as many:
        page = bo_client.get("/payments/unmatched/").content.decode()
    assert page.count('class="split"') == 14 and 'value="M11"' in page  # each row with its suggestion
    assert len(few.captured_queries) == len(many.captured_queries)
