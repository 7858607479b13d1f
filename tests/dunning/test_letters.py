"""Reminder letters (docs/rules/letters.md): sent through the engine, downloaded through the back
office's letter URL, read back with pdfplumber / pypdf (text and positions) and the QR code decoded
from the rendered page with zxing-cpp."""

import datetime
import email
import io
from decimal import Decimal

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.urls import reverse

from dunning import services
from dunning.models import EmailTemplate, LetterTemplate, Reminder, ReminderAssignment
from tests.factories import OrderFactory, UserFactory, berlin
from tests.letters_support import (
    MM,
    WINDOW,
    in_window,
    page_chars,
    page_text,
    page_words,
    read_qr_codes_pdf,
    read_qr_codes_png,
)

IBAN = "DE02 1203 0000 0000 2020 51"


@pytest.fixture(autouse=True)
def locmem(settings, tmp_path):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.MEDIA_ROOT = tmp_path
    mail.outbox = []


@pytest.fixture
def bank(account):
    account.company_name = "Beispiel-Shop GmbH"
    account.street, account.postcode, account.city, account.country = "Hauptstraße 1", "10115", "Berlin", "DE"
    account.iban, account.bic, account.account_holder = IBAN, "BYLADEM1001", "Beispiel-Shop GmbH"
    account.legal_details = "Amtsgericht Berlin HRB 12345"
    account.full_clean()
    account.save()
    return account


@pytest.fixture
def bo(client, backoffice_user):
    client.force_login(backoffice_user)
    return client


def customer(**kwargs):
    values = {"customer_name": "Erika Mustermann", "customer_street": "Lindenallee 5", "customer_postcode": "80331",
              "customer_city": "München", "customer_number": "K-4711", "ordered_at": berlin(2026, 10, 1, 12)}
    return OrderFactory(**{**values, **kwargs})


def send(order, level, at):
    services.reminders_send(order_ids=[order.id], level=level, trigger="automatic", now=at)
    return Reminder.objects.get(order=order, level=level)


def letter(client, reminder) -> bytes:
    response = client.get(reverse("backoffice:reminder_letter", args=[reminder.pk]))
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"] == "application/pdf"
    return response.content


def epc_fields(payload: str) -> list[str]:
    return payload.split("\n")


def test_letter_address_in_window_info_block_claim_and_deadline(needs_weasyprint, bank, config, assignments, bo,
                                                                 now):
    config.level_2_fee = Decimal("2.50")
    config.save()
    order = customer()
    send(order, 1, now)
    reminder = send(order, 2, now + datetime.timedelta(days=8))
    pdf = letter(bo, reminder)
    words = page_words(pdf)
    address = [w for w in words if w["text"] in {"Erika", "Mustermann", "Lindenallee", "5", "80331", "München"}
               and w["top"] < 100 * MM]
    assert {w["text"] for w in address} == {"Erika", "Mustermann", "Lindenallee", "5", "80331", "München"}
    assert all(in_window(w) for w in address), [(w["text"], w["x0"] / MM, w["top"] / MM) for w in address]
    # the information block: right of the window, from 50 mm down
    for value in ("A1", "K-4711"):
        hit = [w for w in words if w["text"].startswith(value) and w["x0"] > 120 * MM and 45 * MM < w["top"] < 98 * MM]
        assert hit, value
    text = page_text(pdf)
    snapshot = reminder.claim_snapshot
    assert snapshot["fees"] == "2.50"
    assert f"{Decimal(snapshot['total_due']):.2f}".replace(".", ",") in text  # 52,4x € in German
    assert reminder.deadline.strftime("%d.%m.%Y") in text
    assert order.number in text and "DE02 1203 0000 0000 2020 51" in text
    assert "Amtsgericht Berlin HRB 12345" in text  # the footer
    assert "Zweite Zahlungserinnerung" in text  # German: the order's language is the account's (de)


def test_letter_states_the_frozen_claim_not_todays(needs_weasyprint, bank, config, assignments, bo, now):
    order = customer(total=Decimal("100.00"))
    reminder = send(order, 1, now)
    order.total = Decimal("999.00")
    order.save()
    text = page_text(letter(bo, reminder))
    assert "100,00" in text and "999,00" not in text


def test_giro_code_decoded_from_the_page_has_every_epc_field(needs_qr_reader, bank, config, assignments, bo, now):
    order = customer(total=Decimal("1249.90"))
    reminder = send(order, 1, now)
    codes = read_qr_codes_pdf(letter(bo, reminder))
    assert len(codes) == 1
    assert epc_fields(codes[0]) == [
        "BCD", "002", "1", "SCT", "BYLADEM1001", "Beispiel-Shop GmbH", "DE02120300000000202051",
        f"EUR{Decimal(reminder.claim_snapshot['total_due']):.2f}", "", "", order.number]


def test_giro_code_without_bic_and_with_utf8_holder(needs_qr_reader, bank, config, assignments, bo, now):
    bank.bic = ""
    bank.account_holder = "Müller & Söhne Straßenbau"
    bank.save()
    order = customer(total=Decimal("10.00"))
    codes = read_qr_codes_pdf(letter(bo, send(order, 1, now)))
    fields = epc_fields(codes[0])
    assert fields[2] == "1" and fields[4] == "" and fields[5] == "Müller & Söhne Straßenbau"
    assert fields[7] == "EUR10.00"


def test_no_giro_code_for_other_currencies(needs_qr_reader, bank, config, assignments, bo, now):
    order = customer(currency="CHF", total=Decimal("80.00"))
    pdf = letter(bo, send(order, 1, now))
    assert read_qr_codes_pdf(pdf) == []
    assert "CHF" in page_text(pdf)


def test_long_rtl_and_cjk_names_stay_in_the_window_in_their_fonts(needs_weasyprint, bank, config, assignments, bo,
                                                                   now):
    # as long as the fields allow (200 characters; city 100)
    long_name = ("Maximiliane Theodora Wilhelmine von und zu Hohenzollern-Sigmaringen-Hechingen " * 3)[:200]
    long_street = ("Hauptstraße des Bundeslandes Nordrhein-Westfalen 123456789 Hinterhaus Aufgang C " * 3)[:200]
    orders = [
        customer(customer_name=long_name, customer_street=long_street, customer_city="Garmisch-Partenkirchen" * 4),
        customer(customer_name="محمد عبد الرحمن", customer_street="شارع الملك فهد 12", customer_city="الرياض",
                 customer_postcode="12211", customer_country="SA"),
        customer(customer_name="山田太郎 株式会社東京商事 経理部御中",
                 customer_street="東京都千代田区丸の内一丁目1番1号", customer_city="東京",
                 customer_postcode="100-0005", customer_country="JP"),
        customer(customer_name="שרה כהן", customer_street="רחוב הרצל 5", customer_city="תל אביב",
                 customer_postcode="6100000", customer_country="IL"),
    ]
    for order in orders:
        pdf = letter(bo, send(order, 1, now))
        chars = [c for c in page_chars(pdf) if WINDOW["top"] - 20 * MM < c["top"] < WINDOW["bottom"] + 5 * MM
                 and c["x0"] < 110 * MM and c["size"] > 8]  # the address lines (not the small return line)
        assert chars, order.customer_name
        outside = [c["text"] for c in chars if not in_window(c)]
        assert not outside, (order.customer_name, outside)
    # the glyphs come from fonts that have them (no missing-glyph boxes): Arabic, CJK, Hebrew
    fonts = {c["text"]: c["fontname"] for c in page_chars(letter(bo, Reminder.objects.get(order=orders[1])))}
    assert "Arabic" in fonts["م"]
    fonts = {c["text"]: c["fontname"] for c in page_chars(letter(bo, Reminder.objects.get(order=orders[2])))}
    assert "CJK" in fonts["山"]
    fonts = {c["text"]: c["fontname"] for c in page_chars(letter(bo, Reminder.objects.get(order=orders[3])))}
    assert "Hebrew" in fonts["ש"]


def test_missing_iban_and_address_are_stated_and_email_still_goes(needs_weasyprint, account, config, assignments,
                                                                  bo, now, support_user, client):
    order = customer(customer_street="", customer_postcode="", customer_city="")
    reminder = send(order, 1, now)
    assert reminder.status == Reminder.Status.SENT and len(mail.outbox) == 1  # e-mail is not blocked
    text = " ".join(page_text(letter(bo, reminder)).split())
    assert "Postanschrift fehlt" in text
    assert "die IBAN (Verkaufskanal)" in text
    page = bo.get(reverse("backoffice:order_detail", args=[order.pk])).content.decode()
    assert 'id="letter-problems"' in page and "Postanschrift des Kunden" in page
    client.force_login(support_user)
    admin = client.get(reverse("admin:accounts_salesaccount_change", args=[account.pk])).content.decode()
    assert "die IBAN (Verkaufskanal)" in admin


def test_english_letter(needs_weasyprint, bank, config, assignments, bo, now):
    order = customer(language="en", customer_country="GB", customer_postcode="SW1A 1AA", customer_city="London")
    text = page_text(letter(bo, send(order, 1, now)))
    assert "Payment reminder for order" in text and "Total due" in text and "UNITED KINGDOM" in text


def test_assigned_letter_template_in_the_orders_language(needs_weasyprint, bank, config, assignments, bo, now):
    de = LetterTemplate.objects.create(name="Brief", language="de", subject="Mahnung {{ order.number }}",
                                       body="Sehr geehrte Damen und Herren,\n\nbitte zahlen Sie {{ claim.total_due }}.",
                                       closing="Mit freundlichen Grüßen")
    LetterTemplate.objects.create(name="Brief", language="en", subject="Reminder {{ order.number }}",
                                  body="Dear {{ customer_name }},\n\nplease pay {{ claim.total_due }}.")
    ReminderAssignment.objects.filter(level=1).update(letter_template=de)
    german, english = customer(), customer(language="en")
    text = page_text(letter(bo, send(german, 1, now)))
    assert f"Mahnung {german.number}" in text and "bitte zahlen Sie 49,90" in text and "Mit freundlichen" in text
    text = page_text(letter(bo, send(english, 1, now)))
    assert f"Reminder {english.number}" in text and "please pay €49.90" in text


@pytest.mark.parametrize("field, source, message", [
    ("body", "{{ order.number ", "Syntax"),
    ("subject", "{{ order.nope }}", "order.nope"),
    ("closing", "{{ ''.__class__ }}", "__class__"),
])
def test_letter_template_errors_refused_on_save(db, field, source, message):
    template = LetterTemplate(name="Brief", language="de", subject="Mahnung", body="Text", closing="")
    setattr(template, field, source)
    with pytest.raises(ValidationError) as error:
        template.full_clean()
    assert message in str(error.value.message_dict[field])


def test_letter_template_error_shown_in_the_admin(db, support_user, client):
    client.force_login(support_user)
    response = client.post(reverse("admin:dunning_lettertemplate_add"),
                           {"name": "Brief", "language": "de", "subject": "Mahnung", "body": "{% if %}",
                            "closing": ""})
    assert response.status_code == 200
    assert "Syntax error" in response.content.decode() or "Syntaxfehler" in response.content.decode()
    assert not LetterTemplate.objects.exists()


def test_payment_qr_inline_image_in_the_html_part(needs_qr_reader, bank, config, assignments, now):
    EmailTemplate.objects.filter(name="Reminder 1").update(
        html_body="<p>Bitte zahlen Sie {{ claim.total_due }}.</p>{{ payment_qr }}", body="Text {{ payment_qr }}.")
    order = customer(total=Decimal("77.70"))
    reminder = send(order, 1, now)
    message = mail.outbox[0]
    html = message.alternatives[0][0]
    assert 'src="cid:payment-qr"' in html and reminder.html_body == html
    assert message.body.endswith("Text .")  # the text part gets no image
    parsed = email.message_from_bytes(message.message().as_bytes())
    images = [p for p in parsed.walk() if p.get_content_type() == "image/png"]
    assert len(images) == 1 and images[0]["Content-ID"] == "<payment-qr>"
    codes = read_qr_codes_png(images[0].get_payload(decode=True))
    assert epc_fields(codes[0])[7] == "EUR77.70" and epc_fields(codes[0])[10] == order.number


def test_payment_qr_empty_over_the_epc_maximum(needs_weasyprint, bank, config, assignments, now):
    EmailTemplate.objects.filter(name="Reminder 1").update(html_body="<p>QR:{{ payment_qr }}</p>")
    send(customer(total=Decimal("1000000000.00")), 1, now)
    message = mail.outbox[0]
    assert message.alternatives[0][0] == "<p>QR:</p>"
    assert not [a for a in message.attachments if getattr(a, "get_content_type", lambda: "")() == "image/png"]


def test_attach_pdf_sends_the_letter_with_the_email(needs_weasyprint, bank, config, assignments, now):
    ReminderAssignment.objects.filter(level=1).update(attach_pdf=True)
    order = customer()
    send(order, 1, now)
    (name, content, mimetype), = mail.outbox[0].attachments
    assert mimetype == "application/pdf" and name == f"reminder-1-{order.number}.pdf"
    assert order.number in page_text(content)


def test_no_attachment_without_attach_pdf(needs_weasyprint, bank, config, assignments, now):
    send(customer(), 1, now)
    assert mail.outbox[0].attachments == []


def test_giro_code_module_rules(db):
    from dunning.girocode import NoGiroCode, girocode

    args = {"account_holder": "Shop", "iban": IBAN, "bic": "", "currency": "EUR", "reference": "A1"}
    assert girocode(amount=Decimal("999999999.99"), **args).payload.endswith("EUR999999999.99\n\n\nA1")
    for amount, currency in ((Decimal("1000000000.00"), "EUR"), (Decimal("10"), "USD"), (Decimal("0"), "EUR")):
        with pytest.raises(NoGiroCode):
            girocode(**{**args, "amount": amount, "currency": currency})


def test_iban_and_bic_validated(account):
    account.iban = "DE02 1203 0000 0000 2020 52"  # wrong check digits
    account.bic = "NOTABIC"
    with pytest.raises(ValidationError) as error:
        account.full_clean()
    assert set(error.value.message_dict) >= {"iban", "bic"}
    account.iban, account.bic = "de02120300000000202051", "byladem1001"
    account.full_clean()
    assert account.iban == IBAN and account.bic == "BYLADEM1001"


def test_letter_url_needs_back_office_login_and_bounded_queries(needs_weasyprint, client, bank, config, assignments,
                                                                now, bo, django_assert_max_num_queries):
    reminder = send(customer(), 1, now)
    url = reverse("backoffice:reminder_letter", args=[reminder.pk])
    assert url == f"/orders/reminders/{reminder.pk}/letter.pdf"
    with django_assert_max_num_queries(8):
        assert bo.get(url).status_code == 200
    bo.logout()
    assert client.get(url).status_code == 302
    client.force_login(UserFactory(username="nostaff"))  # signed in, but not back-office staff
    assert client.get(url).status_code in (302, 403)


def test_unknown_reminder_is_404(bo):
    assert bo.get(reverse("backoffice:reminder_letter", args=[999999])).status_code == 404


def test_order_page_links_each_letter(needs_weasyprint, bank, config, assignments, bo, now):
    order = customer()
    first = send(order, 1, now)
    second = send(order, 2, now + datetime.timedelta(days=8))
    page = bo.get(reverse("backoffice:order_detail", args=[order.pk])).content.decode()
    for reminder in (first, second):
        assert reverse("backoffice:reminder_letter", args=[reminder.pk]) in page
    pdf = bo.get(reverse("backoffice:reminder_letter", args=[first.pk]) + "?download=1")
    assert pdf["Content-Disposition"].startswith("attachment;")
    assert io.BytesIO(pdf.content).read(5) == b"%PDF-"
