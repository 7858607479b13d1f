"""Staff-written reminder templates: a sandboxed Jinja2 environment, a plain-data context, the
placeholder catalogue, validation on save and rendering.

Templates are compiled once per template and call (compiling costs ~1.6 ms, rendering ~20 us)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

from babel import Locale
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from common.dates import local_date, local_today

BABEL_LOCALES = {"de": "de_DE", "en": "en_GB"}

_env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
_html_env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=True)


@lru_cache(maxsize=4096)
def format_money(amount: Decimal, currency: str, language: str) -> str:
    return format_currency(amount, currency, locale=_locale(language))


@lru_cache(maxsize=4096)
def format_number(amount: Decimal, language: str) -> str:
    return format_decimal(amount, format="#,##0.00", locale=_locale(language))


@lru_cache(maxsize=4096)
def format_day(value: datetime.date, language: str) -> str:
    return format_date(value, format="medium", locale=_locale(language))


@lru_cache(maxsize=8)
def _locale(language: str) -> Locale:
    return Locale.parse(BABEL_LOCALES.get(language, "de_DE"))


@dataclass(frozen=True)
class Placeholder:
    name: str
    description: Any  # lazy translation
    example: str


PLACEHOLDERS: list[Placeholder] = [
    Placeholder("order.number", _("Order number"), "100234"),
    Placeholder("order.total", _("Order total with currency, formatted for the language"), "49,90 €"),
    Placeholder("order.total_number", _("Order total without currency symbol"), "49,90"),
    Placeholder("order.open_amount", _("Amount still open, with currency"), "49,90 €"),
    Placeholder("order.currency", _("ISO 4217 currency code"), "EUR"),
    Placeholder("order.ordered_at", _("Order date"), "01.11.2026"),
    Placeholder("order.due_date", _("Due date (order date plus the payment term)"), "15.11.2026"),
    Placeholder("order.days_overdue", _("Days overdue today (a number)"), "11"),
    Placeholder("order.payment_method", _("Payment method"), "Rechnung"),
    Placeholder("customer_name", _("Customer name"), "Erika Mustermann"),
    Placeholder("customer_email", _("Customer e-mail address"), "erika@example.com"),
    Placeholder("sales_account.name", _("Sales account (shop) name"), "Webshop"),
    Placeholder("sales_account.email", _("Sender e-mail of the sales account"), "shop@example.com"),
    Placeholder("shop_name", _("Same as sales_account.name"), "Webshop"),
    Placeholder("payment_instructions", _("Payment instructions of the sales account"), "IBAN DE12 ..."),
    Placeholder("level", _("Dunning level of this reminder (1, 2 or 3)"), "1"),
    Placeholder("today", _("Today's date"), "26.11.2026"),
]


def build_context(
    *,
    number: str,
    total: Decimal,
    currency: str,
    ordered_on: datetime.date,
    due_date: datetime.date,
    today: datetime.date,
    payment_method: str,
    customer_name: str,
    customer_email: str,
    account_name: str,
    account_email: str,
    payment_instructions: str,
    level: int,
    language: str,
) -> dict[str, Any]:
    """The plain-data context of one reminder: only strings and numbers, nothing with methods."""
    money = format_money(total, currency, language)
    return {
        "order": {
            "number": number,
            "total": money,
            "total_number": format_number(total, language),
            "open_amount": money,
            "currency": currency,
            "ordered_at": format_day(ordered_on, language),
            "due_date": format_day(due_date, language),
            "days_overdue": (today - due_date).days,
            "payment_method": payment_method,
        },
        "customer_name": customer_name,
        "customer_email": customer_email,
        "sales_account": {"name": account_name, "email": account_email},
        "shop_name": account_name,
        "payment_instructions": payment_instructions,
        "level": level,
        "today": format_day(today, language),
    }


def order_context(order, *, level: int, today: datetime.date, language: str) -> dict[str, Any]:
    account = order.sales_account
    return build_context(
        number=order.number,
        total=order.total,
        currency=order.currency,
        ordered_on=local_date(order.ordered_at),
        due_date=order.due_date,
        today=today,
        payment_method=order.payment_method.name,
        customer_name=order.customer_name,
        customer_email=order.customer_email,
        account_name=account.name,
        account_email=account.sender_email,
        payment_instructions=account.payment_instructions,
        level=level,
        language=language,
    )


def sample_context(language: str = "de", level: int = 1) -> dict[str, Any]:
    today = datetime.date(2026, 11, 26)
    return build_context(
        number="100234",
        total=Decimal("1249.90"),
        currency="EUR",
        ordered_on=datetime.date(2026, 11, 1),
        due_date=datetime.date(2026, 11, 15),
        today=today,
        payment_method="Rechnung" if language == "de" else "Invoice",
        customer_name="Erika Mustermann",
        customer_email="erika.mustermann@example.com",
        account_name="Beispiel-Shop",
        account_email="shop@example.com",
        payment_instructions="IBAN DE02 1203 0000 0000 2020 51, BIC BYLADEM1001",
        level=level,
        language=language,
    )


# --- validation ---------------------------------------------------------------------------------

def _static_problems(source: str, env: ImmutableSandboxedEnvironment) -> list[str]:
    """Syntax, unknown placeholders, unknown attributes and access to internals, found without
    rendering, so that branches not taken with the sample data are checked too."""
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as exc:
        return [str(_("Syntax error in line %(line)s: %(message)s") % {"line": exc.lineno, "message": exc.message})]
    try:
        env.from_string(source)  # unknown filters and tests fail when compiling
    except TemplateError as exc:
        return [str(exc)]
    problems: list[str] = []
    sample = sample_context()
    for name in sorted(meta.find_undeclared_variables(tree)):
        if name not in sample:
            problems.append(str(_("Unknown placeholder “%(name)s”.") % {"name": name}))
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        attr = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
        if isinstance(attr, str) and attr.startswith("_"):
            problems.append(str(_("Access to “%(attr)s” is not allowed.") % {"attr": attr}))
            continue
        # order.xyz: check against the known structure when the base is a known placeholder.
        base = node.node
        if isinstance(base, nodes.Name) and base.name in sample and isinstance(attr, str):
            known = sample[base.name]
            if not (isinstance(known, dict) and attr in known):
                problems.append(str(_("Unknown placeholder “%(name)s”.") % {"name": f"{base.name}.{attr}"}))
    return problems


def _render_problem(source: str, env: ImmutableSandboxedEnvironment) -> str | None:
    try:
        env.from_string(source).render(sample_context())
    except Exception as exc:  # anything a template does wrong with sample data is the author's error
        return f"{type(exc).__name__}: {exc}"
    return None


def validate_template_fields(*, subject: str, body: str, html_body: str = "") -> None:
    errors: dict[str, list[str]] = {}
    for field, source, env in (("subject", subject, _env), ("body", body, _env), ("html_body", html_body, _html_env)):
        if not source:
            continue
        problems = _static_problems(source, env)
        if not problems:
            rendered = _render_problem(source, env)
            if rendered:
                problems.append(rendered)
        if problems:
            errors[field] = list(dict.fromkeys(problems))
    if errors:
        raise ValidationError(errors)


# --- rendering ----------------------------------------------------------------------------------

def clean_subject(value: str) -> str:
    """A subject is one line: CR, LF and other line breaks become single spaces."""
    return " ".join(value.split())[:255]


@dataclass
class RenderedEmail:
    subject: str
    body: str
    html_body: str


class CompiledTemplate:
    """An EmailTemplate compiled once; render() is cheap."""

    def __init__(self, template) -> None:
        self.template = template
        self._subject = _env.from_string(template.subject)
        self._body = _env.from_string(template.body)
        self._html = _html_env.from_string(template.html_body) if template.html_body else None

    def render(self, context: dict[str, Any]) -> RenderedEmail:
        return RenderedEmail(
            subject=clean_subject(self._subject.render(context)),
            body=self._body.render(context),
            html_body=self._html.render(context) if self._html else "",
        )


def render_reminder(compiled: CompiledTemplate, order, *, level: int, now: datetime.datetime) -> RenderedEmail:
    """The reminder of `level` for `order` as it goes out at `now`, in the order's language: what the
    engine sends, the Notify confirmation previews, and the demo and the benchmark write."""
    language = order.effective_language
    return compiled.render(order_context(order, level=level, today=local_today(now), language=language))
