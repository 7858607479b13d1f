"""The payments pages: statement upload (same service as the command), the unmatched queue with
assign / dismiss, unassign from the order page, the navigation badge, and the order page's
payments and outstanding amount. Bad input is a message with status 400, never a 500."""

from decimal import Decimal
from pathlib import Path

from django.core.files.uploadedfile import SimpleUploadedFile

from orders.models import OrderEvent
from payments.models import BankStatement, Payment

FIXTURES = Path(__file__).parent.parent / "payments" / "fixtures"
SPK = FIXTURES / "camt053_sparkasse_001_02.xml"


def upload(client, *files, **extra):
    return client.post("/payments/upload/", {"files": list(files), **extra})


def xml(name="spk.xml", data=None):
    return SimpleUploadedFile(name, data if data is not None else SPK.read_bytes(), content_type="text/xml")


def test_upload_imports_and_matches(bo_client, place):
    order = place(10, number="A100001")
    response = upload(bo_client, xml())
    assert response.status_code == 200
    assert ("4 Buchungen, 3 Zahlungen, 1 zugeordnet, 1 nicht zugeordnet, 0 Duplikate, 1 ignoriert"
            in response.content.decode())
    order.refresh_from_db()
    assert order.paid_at is not None
    assert BankStatement.objects.get().imported_by.username == "backoffice"


def test_upload_dry_run_writes_nothing(bo_client, place):
    place(10, number="A100001")
    response = upload(bo_client, xml(), dry_run="on")
    assert response.status_code == 200 and not Payment.objects.exists()


def test_upload_bad_files_are_400_and_write_nothing(bo_client, db):
    for data in (b"<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>", b"garbage", b"PK\x03\x04broken",
                 SPK.read_bytes().replace(b">20.00<", b">20,00<")):
        response = upload(bo_client, xml("good.xml"), xml("bad.xml", data))
        assert response.status_code == 400
        assert "bad.xml" in response.content.decode()
    assert upload(bo_client).status_code == 400
    assert not Payment.objects.exists() and not BankStatement.objects.exists()


def test_why_a_file_is_refused_is_said_in_the_page_language(bo_client, db):
    """The parser's problem in German on the German page (issue 18, item 5); the command stays English."""
    import html

    bad_amount = SPK.read_bytes().replace(b">20.00<", b">20,00<")
    text = html.unescape(upload(bo_client, xml("bad.xml", bad_amount)).content.decode())
    assert "Nichts wurde importiert: bad.xml: Buchung 3: ungültiger Betrag '20,00' " \
           "(Dezimaltrennzeichen ist der Punkt)" in text
    assert "keine camt.053-XML-Datei" in html.unescape(upload(bo_client, xml("x.xml", b"garbage")).content.decode())
    bo_client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    text = html.unescape(upload(bo_client, xml("bad.xml", bad_amount)).content.decode())
    assert "bad.xml: entry 3: invalid amount '20,00' (a dot is the decimal separator)" in text


def test_unmatched_queue_assign_dismiss_unassign_and_badge(bo_client, place):
    upload(bo_client, xml())  # A100002 (20.00) has no order yet: unmatched
    order = place(10, number="B-7", total=Decimal("20.00"))
    page = bo_client.get("/payments/unmatched/")
    assert page.status_code == 200 and 'id="unmatched-badge">2</span>' in page.content.decode()
    assert bo_client.get("/payments/unmatched/count/").json() == {"unmatched": 2}
    payment = Payment.objects.get(reference__contains="A100002")
    response = bo_client.post(f"/payments/{payment.pk}/action/", {"action": "assign", "order": "B-7"})
    assert response.status_code == 302
    order.refresh_from_db()
    assert order.paid_at is not None
    detail = bo_client.get(f"/orders/{order.pk}/").content.decode()
    assert 'id="payments"' in detail and "Teilzahlung" in detail
    bo_client.post(f"/payments/{payment.pk}/action/", {"action": "unassign"})
    order.refresh_from_db()
    assert order.paid_at is None
    assert set(order.events.values_list("action", flat=True)) >= {
        OrderEvent.Action.PAYMENT_MATCHED, OrderEvent.Action.PAYMENT_UNASSIGNED, OrderEvent.Action.REOPENED_BY_UNASSIGN}
    bo_client.post(f"/payments/{payment.pk}/action/", {"action": "dismiss"})
    payment.refresh_from_db()
    assert payment.dismissed_at is not None
    assert bo_client.get("/payments/unmatched/count/").json() == {"unmatched": 1}


def test_assign_refusals_are_messages(bo_client, place):
    upload(bo_client, xml())
    payment = Payment.objects.get(reference__contains="A100002")
    response = bo_client.post(f"/payments/{payment.pk}/action/", {"action": "assign", "order": "nope"}, follow=True)
    assert response.status_code == 200 and "genau eines Auftrags" in response.content.decode()
    response = bo_client.post(f"/payments/{payment.pk}/action/", {"action": "unassign"}, follow=True)
    assert "Diese Zahlung ist keinem Auftrag zugeordnet." in response.content.decode()
    assert bo_client.post(f"/payments/{payment.pk}/action/", {"action": "x"}).status_code == 302
    assert bo_client.post("/payments/999999/action/", {"action": "dismiss"}).status_code == 404


def test_partly_paid_order_page_shows_outstanding(bo_client, place):
    order = place(10, number="A100002", total=Decimal("49.90"))
    upload(bo_client, xml())
    page = bo_client.get(f"/orders/{order.pk}/").content.decode()
    assert "29,90" in page or "29.90" in page


def test_pages_need_back_office(client, db):
    for url in ("/payments/upload/", "/payments/unmatched/"):
        assert client.get(url).status_code == 302
