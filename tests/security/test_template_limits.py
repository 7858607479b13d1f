"""Template bombs: staff-written templates have bounded cost.

A back-office user can save a template; before these limits `{{ 9**(9**9) }}` pinned a web worker for
minutes and a booby-trapped template written straight into the database hung the Notify preview and
the job while it held row locks. Every attack here goes through a public path (the admin form, the
Notify page, the send service, the `run_dunning` command) and must end quickly with a clear error."""

import datetime
import time

import pytest
from django.core.management import call_command
from django.utils import timezone, translation
from jinja2 import TemplateError

from dunning import services
from dunning.models import DunningRun, EmailTemplate, Reminder, ReminderAssignment
from dunning.selectors import local_midnight, local_today
from dunning.templating import CompiledTemplate, sample_context
from tests.factories import OrderFactory, berlin

FAST = 5.0  # seconds; every refusal below takes milliseconds, this only separates "refused" from "hung"

# (body, what the error says). Each of these hung, ate memory or was accepted before the limits.
BOMBS = [
    ("{{ 9**(9**9) }}", "Number too large"),
    ("{{ 10 ** 10 ** 10 }}", "Number too large"),
    ("{% set n = 7 %}" + "{% set n = n * n %}" * 40 + "{{ n }}", "Number too large"),
    ("{{ 'x' * 10**9 }}", "Result too large"),
    ("{{ [1] * 10**9 }}", "Result too large"),
    ("{% set a = 'xy' %}" + "{% set a = a + a %}" * 40 + "{{ a|length }}", "Result too large"),
    ("{% set a = 'xy' %}" + "{% set a = a ~ a %}" * 40 + "{{ a|length }}", "Result too large"),
    ("{% set a = [1] %}" + "{% set a = [a, a] %}" * 40 + "{{ a }}", "Result too large"),
    ("{{ 'x'.center(10**9) }}", "Result too large"),
    ("{{ 'x'.ljust(10**9) }}", "Result too large"),
    ("{{ 'x'.zfill(10**9) }}", "Result too large"),
    ("{{ 'x'.replace('', 'y' * 10**5) }}", "Result too large"),
    ("{{ '{:>999999999}'.format(1) }}", "Result too large"),
    ("{{ '{:>{w}}'.format(1, w=10**9) }}", "Result too large"),
    ("{{ '%999999999d' % 1 }}", "Result too large"),
    ("{{ '%.999999999f' % 1.5 }}", "Result too large"),
    ("{{ '%*d' % (999999999, 1) }}", "Result too large"),
    ("{{ '%999999999d'|format(1) }}", "Result too large"),
    ("{{ 'x'|center(1000000000) }}", "Result too large"),  # a literal: Jinja folded it while compiling
    ("{{ 'a\nb'|indent(1000000000) }}", "Result too large"),
    ("{{ ('a ' * 5000)|wordwrap(1, wrapstring='y' * 5000) }}", "Result too large"),
    ("{{ ('x' * 1000)|replace('', 'y' * 1000) }}", "Result too large"),
    ("{{ (10**50)|round(-1000000) }}", "Number too large"),
    ("{% for i in range(1000) %}{{ 'x' * 1000 }}{% endfor %}", "Result too large"),  # 1 MB of output
    ("{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}", "Too many steps"),
    ("{% for i in range(9999) %}{% for j in range(9999) %}{% endfor %}{% endfor %}", "Too many steps"),
    ("{% for c in 'x' * 99999 %}{% for d in 'x' * 99999 %}{% endfor %}{% endfor %}", "Too many steps"),
    ("{% for i in range(9999) %}{% for j in range(9999) if j < 0 %}{% endfor %}{% endfor %}", "Too many steps"),
    ("{% set s %}{% for i in range(9000) %}{{ 'y' * 99999 }}{% endfor %}{% endset %}", "Too much work"),
    ("{% filter upper %}{% for i in range(9000) %}" + "z" * 5000 + "{% endfor %}{% endfilter %}", "Too much work"),
    ("{{ order.number.encode() }}", "Calling “encode” is not allowed"),
    ("{{ (1).to_bytes(10**9, 'big') }}", "Calling “to_bytes” is not allowed"),
    ("{{" + "(" * 3000 + "1" + ")" * 3000 + "}}", "too deeply nested"),  # was a RecursionError (a 500)
    ("x" * 100_001, "Template too long"),
]

# Jinja's globals and internals are no placeholders (item 6); neither are macros, blocks and the like.
NOT_PLACEHOLDERS = [
    ("{{ self }}", "Unknown placeholder “self”"),
    ("{{ namespace() }}", "Unknown placeholder “namespace”"),
    ("{% set ns = namespace(a=1) %}{{ ns.a }}", "Unknown placeholder “namespace”"),
    ("{{ lipsum() }}", "Unknown placeholder “lipsum”"),
    ("{{ cycler(1, 2).next() }}", "Unknown placeholder “cycler”"),
    ("{{ joiner() }}", "Unknown placeholder “joiner”"),
    ("{{ dict(a=1) }}", "Unknown placeholder “dict”"),
    ("{% macro m() %}x{% endmacro %}{{ m() }}", "“{% macro %}” is not allowed"),
    ("{% call range(1) %}x{% endcall %}", "“{% call %}” is not allowed"),
    ("{% block b %}x{% endblock %}", "“{% block %}” is not allowed"),
    ("{% for x in [1] recursive %}{{ x }}{% endfor %}", "“{% for … recursive %}” is not allowed"),
    ("{% include 'x' %}", "“{% include %}” is not allowed"),
    ("{{ order.number|tojson }}", "Unknown filter “tojson”"),
    ("{{ [1, 2]|map('string')|join }}", "Unknown filter “map”"),
    ("{{ 'a'|slice(1000000000)|list }}", "Unknown filter “slice”"),
]

# What templates are for keeps working: placeholders, conditions, safe filters, small loops and arithmetic.
GOOD = [
    ("{{ order.number|upper }}", "100234"),
    ("{{ customer_name|default('Kunde') }}", "Erika Mustermann"),
    ("{% for i in range(3) %}{{ loop.index }}{% endfor %}", "123"),
    ("{{ '%s/%s' % (order.number, level) }}", "100234/1"),
    ("{{ '%05.1f' % 3.14159 }}", "003.1"),
    ("{{ '{} {}'.format(order.number, level) }}", "100234 1"),
    ("{{ '{:>8}'.format(level) }}", "       1"),
    ("{{ order.number ~ '-' ~ level }}", "100234-1"),
    ("{{ order.days_overdue + 7 }} {{ 2 ** 10 }} {{ 7 // 2 }} {{ 7 % 4 }} {{ -level }}", "18 1024 3 3 -1"),
    ("{% if level in [2, 3] %}x{% else %}y{% endif %}", "y"),
    ("{{ customer_name|truncate(9, true, '…', 0) }}", "Erika Mu…"),
    ("{{ customer_name|truncate(10**9) }}", "Erika Mustermann"),
    ("{{ 'x'|center(9) }}|{{ 'ab'.rjust(4, '.') }}", "    x    |..ab"),
    ("{{ order.number.startswith('100') }} {{ order.currency.lower() }}", "True eur"),
    ("{{ order.total_number|replace(',', ';') }}", "1.249;90"),
    ("{{ 'Bestellung'|indent(2, true) }}", "  Bestellung"),
    ("{{ '-' * 20 }}", "-" * 20),
    ("{% set a = [1, 2, 3] %}{{ a|join(', ') }} {{ a|sum }} {{ a|max }}", "1, 2, 3 6 3"),
    ("{{ 1249.94|round(1) }}", "1249.9"),
    ("{{ order.number|wordwrap(3) }}", "100\n234"),
    ("{% set greeting %}Hallo {{ customer_name }}{% endset %}{{ greeting|upper }}", "HALLO ERIKA MUSTERMANN"),
    ("{% for c in order.currency %}{{ c|lower }}{% if not loop.last %}_{% endif %}{% endfor %}", "e_u_r"),
    ("{{ 'x' * 100000 }}", "x" * 100_000),  # exactly at the limit
]


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


def make(**kw) -> EmailTemplate:
    fields = {"name": "T", "language": "de", "subject": "Erinnerung {{ order.number }}", "body": "Hallo", **kw}
    return EmailTemplate(**fields)


def clean_errors(template: EmailTemplate) -> dict:
    from django.core.exceptions import ValidationError

    try:
        template.full_clean()
    except ValidationError as exc:
        return exc.message_dict
    return {}


# --- the admin form: refused at save time, quickly, with a form error ------------------------------


@pytest.mark.parametrize(("body", "fragment"), BOMBS + NOT_PLACEHOLDERS)
def test_admin_form_refuses_the_template_quickly(client, backoffice_user, body, fragment):
    client.force_login(backoffice_user)
    assert client.get("/admin/dunning/emailtemplate/add/").status_code == 200  # warm up: time the POST only
    started = time.monotonic()
    response = client.post("/admin/dunning/emailtemplate/add/", {
        "name": "Bomb", "language": "de", "subject": "S", "body": body, "html_body": ""},
        HTTP_ACCEPT_LANGUAGE="en")
    assert time.monotonic() - started < FAST
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert any(fragment in message for message in errors["body"]), errors
    assert not EmailTemplate.objects.filter(name="Bomb").exists()


@pytest.mark.parametrize(("body", "expected"), GOOD)
def test_ordinary_templates_validate_and_render_as_before(db, body, expected):
    template = make(body=body)
    assert clean_errors(template) == {}
    assert CompiledTemplate(template).render(sample_context()).body == expected


def test_the_subject_and_the_html_body_have_their_own_output_limits(db):
    errors = clean_errors(make(subject="{{ 'x' * 1001 }}", html_body="{{ 'x' * 99999 }}{{ 'x' * 99999 }}"))
    assert any("Result too large (more than 1,000 characters)" in m for m in errors["subject"]), errors
    assert any("Result too large (more than 100,000 characters)" in m for m in errors["html_body"]), errors


def test_a_bomb_in_a_branch_the_sample_order_does_not_take_is_found_at_level_3(db):
    errors = clean_errors(make(body="{% if level == 3 %}{{ 'x' * 10**9 }}{% endif %}"))
    assert any("Result too large" in m for m in errors["body"]), errors


def test_the_messages_are_translated(client, backoffice_user):
    client.force_login(backoffice_user)
    response = client.post("/admin/dunning/emailtemplate/add/", {
        "name": "Bomb", "language": "de", "subject": "S", "body": "{{ 'x' * 10**9 }}", "html_body": ""},
        HTTP_ACCEPT_LANGUAGE="de")
    assert "Ergebnis zu groß (mehr als 100.000 Zeichen)" in response.content.decode()


def test_rendering_stops_at_the_time_limit(db, monkeypatch):
    """The last line of defence: whatever the other limits miss, a render stops after its deadline.
    (Loops of cheap steps are what it catches here; with the real limit it is one second.)"""
    from dunning import templating

    monkeypatch.setattr(templating, "MAX_SECONDS", 0.0)
    with pytest.raises(TemplateError, match="took too long"):
        CompiledTemplate(make(body="{% for i in range(10) %}{{ i }}{% endfor %}")).render(sample_context())


# --- templates written straight into the database (clean() bypassed) -------------------------------


@pytest.mark.parametrize(("body", "fragment"), BOMBS + NOT_PLACEHOLDERS[7:12])
def test_an_unvalidated_bomb_fails_quickly_when_rendered(db, body, fragment):
    started = time.monotonic()
    with pytest.raises(TemplateError) as exc:
        CompiledTemplate(make(body=body)).render(sample_context())
    assert time.monotonic() - started < FAST
    assert fragment in str(exc.value)


def test_a_template_that_blew_a_limit_fails_at_once_the_next_time(db):
    compiled = CompiledTemplate(make(body="{% for i in range(9999) %}{% for j in range(9999) %}{% endfor %}"
                                          "{% endfor %}"))
    with pytest.raises(TemplateError, match="Too many steps"):
        compiled.render(sample_context())
    started = time.monotonic()
    with pytest.raises(TemplateError, match="Too many steps"):
        compiled.render(sample_context())
    assert time.monotonic() - started < 0.01


@pytest.fixture
def bomb(config, assignments):
    """Level 1 of the Webshop sends a booby-trapped template that was written into the database."""
    template = EmailTemplate.objects.create(
        name="Bomb", language="de", subject="Erinnerung {{ order.number }}",
        body="{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}{{ 9**(9**9) }}")
    ReminderAssignment.objects.filter(level=1).update(template=template)
    return template


def test_the_template_admin_preview_shows_the_error_instead_of_hanging(client, backoffice_user, bomb):
    client.force_login(backoffice_user)
    started = time.monotonic()
    response = client.get(f"/admin/dunning/emailtemplate/{bomb.pk}/change/", HTTP_ACCEPT_LANGUAGE="en")
    assert time.monotonic() - started < FAST
    assert response.status_code == 200
    assert "Too many steps (more than 10,000 loop iterations and calls)." in response.content.decode()


def test_the_notify_preview_shows_the_error_instead_of_hanging(client, backoffice_user, bomb, account, invoice):
    today = local_today(timezone.now())
    ordered_on = today - datetime.timedelta(days=10 + invoice.payment_term_days)
    order = OrderFactory(sales_account=account, payment_method=invoice,
                         ordered_at=local_midnight(ordered_on) + datetime.timedelta(hours=12))
    client.force_login(backoffice_user)
    started = time.monotonic()
    response = client.get("/orders/open-payments/notify/", {"dunning_level": "1", "ids": [order.pk]},
                          HTTP_ACCEPT_LANGUAGE="en")
    assert time.monotonic() - started < FAST
    assert response.status_code == 200
    plan = response.context["plan"]
    assert plan.preview is None and "Too many steps" in plan.preview_error
    assert "The template cannot be rendered:" in response.content.decode()
    assert not Reminder.objects.exists()


def test_sending_fails_the_reminders_with_the_error_instead_of_hanging(bomb, mailoutbox):
    orders = [OrderFactory(ordered_at=berlin(2026, 10, 1, 12)) for _ in range(3)]
    started = time.monotonic()
    outcome = services.reminders_send(order_ids=[o.id for o in orders], level=1, trigger="automatic",
                                      now=berlin(2026, 11, 26, 10, 0))
    assert time.monotonic() - started < FAST
    assert sorted(outcome.failed) == sorted(o.id for o in orders) and outcome.sent == []
    reminders = Reminder.objects.filter(order__in=orders)
    assert [r.status for r in reminders] == [Reminder.Status.FAILED] * 3
    assert all("Too many steps" in r.error and "Bomb" in r.error for r in reminders)
    assert mailoutbox == []


def test_the_run_dunning_command_records_the_failure_instead_of_hanging(bomb, account, invoice, mailoutbox):
    today = local_today(timezone.now())
    ordered_on = today - datetime.timedelta(days=10 + invoice.payment_term_days)
    order = OrderFactory(sales_account=account, payment_method=invoice,
                         ordered_at=local_midnight(ordered_on) + datetime.timedelta(hours=12))
    started = time.monotonic()
    call_command("run_dunning", stdout=_Sink(), stderr=_Sink())
    assert time.monotonic() - started < FAST
    run = DunningRun.objects.get()
    assert run.failed == 1 and run.sent == 0
    reminder = Reminder.objects.get(order=order)
    assert reminder.status == Reminder.Status.FAILED and "Too many steps" in reminder.error
    assert mailoutbox == []


class _Sink:
    def write(self, *args, **kwargs) -> None:
        pass

    def flush(self) -> None:
        pass
