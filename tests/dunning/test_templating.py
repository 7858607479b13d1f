"""Staff-written templates: sandboxed, validated on save, formatted for the language."""

import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation
from hypothesis import given, settings
from hypothesis import strategies as st

from dunning.models import EmailTemplate
from dunning.templating import CompiledTemplate, clean_subject, format_day, format_money, sample_context


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


def make(**kw):
    fields = {"name": "T", "language": "de", "subject": "Erinnerung {{ order.number }}",
              "body": "Hallo {{ customer_name }}", **kw}
    return EmailTemplate(**fields)


def errors_of(template) -> dict:
    with pytest.raises(ValidationError) as exc:
        template.full_clean()
    return exc.value.message_dict


def test_valid_template_passes(db):
    template = make(body="{% if order.days_overdue > 10 %}Dringend: {% endif %}{{ order.total }} an "
                         "{{ sales_account.name }}, Stufe {{ level }}. {{ payment_instructions }}",
                    html_body="<p>{{ customer_name }}</p>")
    template.full_clean()


@pytest.mark.parametrize(("body", "fragment"), [
    ("{{ order.number ", "Syntax error in line 1"),
    ("{% if %}", "Syntax error"),
    ("{{ customer }}", "Unknown placeholder “customer”"),
    ("{{ order.secret }}", "Unknown placeholder “order.secret”"),
    ("{{ customer_name.upper }}", "Unknown placeholder “customer_name.upper”"),
    ("{% if False %}{{ nope }}{% endif %}", "Unknown placeholder “nope”"),  # branch not taken still checked
    ("{{ order.number|nofilter }}", "Unknown filter “nofilter”"),
    ("{{ ''.__class__ }}", "Access to “__class__” is not allowed"),
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "Access to “__class__” is not allowed"),
    ("{{ order['__class__'] }}", "Access to “__class__” is not allowed"),
    ("{{ order._meta }}", "Access to “_meta” is not allowed"),
    ("{{ (order|attr('__class__')) }}", "SecurityError"),
])
def test_bad_templates_are_refused_on_save(db, body, fragment):
    errors = errors_of(make(body=body))
    assert any(fragment in message for message in errors["body"]), errors


def test_subject_and_html_are_validated_too(db):
    errors = errors_of(make(subject="{{ unknown }}", html_body="{{ order.__class__ }}"))
    assert "subject" in errors and "html_body" in errors


def test_sandbox_is_inert_at_render_time_even_for_unvalidated_templates(db):
    """A template written straight into the database (never validated) still cannot escape."""
    from jinja2.exceptions import SecurityError

    template = make(body="{{ ''.__class__.__mro__ }}")
    with pytest.raises(SecurityError):
        CompiledTemplate(template).render(sample_context())
    template = make(body="{{ order.update({'number': 'x'}) }}")  # immutable sandbox: no mutation
    with pytest.raises(SecurityError):
        CompiledTemplate(template).render(sample_context())


def test_context_is_plain_data():
    def plain(value):
        if isinstance(value, dict):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        return isinstance(value, str | int)

    assert plain(sample_context())


def test_amounts_and_dates_for_each_language():
    assert format_money(Decimal("49.90"), "EUR", "de") == "49,90\xa0€"
    assert format_money(Decimal("49.90"), "EUR", "en") == "€49.90"
    assert format_money(Decimal("1249.90"), "EUR", "de") == "1.249,90\xa0€"
    assert format_money(Decimal("12.00"), "CHF", "de") == "12,00\xa0CHF"
    assert format_day(datetime.date(2026, 11, 5), "de") == "05.11.2026"
    assert format_day(datetime.date(2026, 11, 5), "en") == "5 Nov 2026"


def test_subject_is_one_line():
    assert clean_subject("a\r\nBcc: x@example.com\n b\u2028c") == "a Bcc: x@example.com b c"


def test_rendering_with_text_and_html_parts(db):
    template = make(subject="Erinnerung\n{{ order.number }}", body="{{ order.total }}",
                    html_body="<b>{{ customer_name }}</b>")
    context = sample_context()
    context["customer_name"] = "<script>alert(1)</script>"
    rendered = CompiledTemplate(template).render(context)
    assert rendered.subject == "Erinnerung 100234"
    assert rendered.body == "1.249,90\xa0€"
    assert rendered.html_body == "<b>&lt;script&gt;alert(1)&lt;/script&gt;</b>"  # autoescaped in HTML


def test_admin_page_lists_placeholders_and_previews(client, support_user):
    from dunning.templating import PLACEHOLDERS

    template = EmailTemplate.objects.create(name="Erinnerung", language="de",
                                            subject="Bestellung {{ order.number }}", body="Offen: {{ order.total }}")
    client.force_login(support_user)
    response = client.get(f"/admin/dunning/emailtemplate/{template.pk}/change/")
    assert response.status_code == 200
    page = response.content.decode()
    for placeholder in PLACEHOLDERS:
        assert placeholder.name in page
    assert "Bestellung 100234" in page and "Offen: 1.249,90\xa0€" in page


def test_admin_refuses_a_broken_template_with_a_form_error(client, support_user):
    client.force_login(support_user)
    response = client.post("/admin/dunning/emailtemplate/add/", {
        "name": "X", "language": "de", "subject": "S", "body": "{{ ''.__class__ }}", "html_body": ""},
        HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    assert "is not allowed" in response.content.decode()
    assert not EmailTemplate.objects.filter(name="X").exists()


@settings(max_examples=300, deadline=None)
@given(amount=st.decimals(min_value=-10**9, max_value=10**9, places=2) | st.decimals(
           min_value=-1000, max_value=1000, places=5),
       currency=st.sampled_from(["EUR", "GBP", "CHF", "USD", "JPY", "PLN", "SEK", "KWD", "XYZ"]),
       language=st.sampled_from(["de", "en", "fr"]))
def test_format_money_is_babels_format_currency(amount, currency, language):
    """The fast path (pattern and symbol read once per currency and language) gives babel's string."""
    from babel.numbers import format_currency

    from common.formats import babel_locale as _locale

    format_money.cache_clear()
    assert format_money(amount, currency, language) == format_currency(amount, currency, locale=_locale(language))
