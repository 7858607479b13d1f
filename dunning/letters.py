"""Reminder letters: one PDF per reminder in DIN 5008 form B, with the reminder's frozen claim and
the payment QR code (docs/rules/letters.md).

The layout is fixed (dunning/templates/dunning/letter.html): the address field of form B (20 mm
from the left, 45 mm from the top, 85 x 45 mm: the window of a DL envelope once the page is folded
at 105 and 210 mm), the information block (125 mm from the left, 50 mm from the top), the subject
at 98.46 mm, the claim as a table, the deadline, the payment details with the GiroCode, and a footer
with the seller's details. What staff write is the text: a `LetterTemplate` (sandboxed Jinja2 with
the e-mail placeholders) picked per assignment; without one, the built-in text in the letter's
language.

The letter states what the reminder stated: `Reminder.claim_snapshot` and `Reminder.deadline`, and
the date it was created, never today's claim. Data a letter needs but lacks (the customer's postal
address, the seller's IBAN, ...) is printed where it would be, in red, so that nobody posts such a
letter; `letter_problems` lists it for the admin and the order page. Sending e-mail is never
blocked by it.

An address never leaves the window: its lines are wrapped and cut here (`address_lines`) to the six
lines of the address zone, counting East Asian wide characters double, and the box clips anything
the font makes wider still. Noto fonts cover Latin, Arabic, Hebrew and CJK (Debian fonts-noto-core,
fonts-noto-cjk); the address lines are laid out with bidi, so right-to-left names print right.

Rendering: WeasyPrint (dunning.pdf_render), 20 letters to a document, each letter a section that
starts a page; a large batch is laid out on every core and joined with pypdf (`render_letters_pdf`),
reporting progress after each document. Layout costs some 60 ms of CPU a letter, the PDF some
15 ms, the HTML (with the QR code) some 7 ms (docs/benchmarks-letters.md). Images come from data:
URIs only (the logo is read once per account and call); the URL fetcher refuses everything else,
so staff text can never make the renderer fetch."""

from __future__ import annotations

import base64
import logging
import mimetypes
import multiprocessing
import re
import textwrap
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from django.conf import settings
from django.template.loader import get_template
from django.utils import translation
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from common.dates import local_date

from . import pdf_render
from .claim import SNAPSHOT_FIELDS, deadline_after
from .girocode import GiroCode, NoGiroCode, girocode
from .models import LetterTemplate, Reminder, ReminderAssignment
from .templating import (
    MAX_BODY_OUTPUT,
    MAX_SUBJECT_OUTPUT,
    _env,
    clean_subject,
    format_day,
    format_money,
    order_context,
)

LETTER_SECTION = "dunning/_letter.html"
LETTERS_DOCUMENT = "dunning/letters.html"
logger = logging.getLogger(__name__)
ADDRESS_LINES = 6  # the address zone of form B (27.3 mm)
ADDRESS_WIDTH = 38  # units per line: a Latin character 1, an East Asian wide one 2 (see `address_lines`)
DEFAULT_DEADLINE_DAYS = 7


def letter_filename(number: str, level: int) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", number).strip("._") or "order"
    return f"reminder-{level}-{safe}.pdf"


# --- what is missing ----------------------------------------------------------------------------

def letter_problems(order) -> list[str]:
    """What a letter of `order` lacks for postal sending (empty: nothing)."""
    return order.address_problems() + order.sales_account.letter_problems()


# --- the address field --------------------------------------------------------------------------

def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _wrap(text: str, width: int) -> list[str]:
    """Lines of at most `width` units, broken at spaces where possible, else anywhere."""
    text = " ".join(text.split())
    if not text:
        return []
    if _width(text) == len(text):
        return textwrap.wrap(text, width=width, break_long_words=True, break_on_hyphens=True)
    lines, line = [], ""
    for word in text.split(" "):
        candidate = f"{line} {word}" if line else word
        if _width(candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        line = ""
        for ch in word:  # a word wider than a line (CJK has no spaces): break between characters
            if _width(line + ch) > width:
                lines.append(line)
                line = ""
            line += ch
    if line:
        lines.append(line)
    return lines


def _fit(text: str, lines: int, width: int = ADDRESS_WIDTH) -> list[str]:
    wrapped = _wrap(text, width)
    if len(wrapped) <= lines:
        return wrapped
    kept = wrapped[:lines]
    last = kept[-1]
    while _width(last) > width - 1:
        last = last[:-1]
    kept[-1] = last.rstrip() + "…"
    return kept


def address_lines(*, name: str, street: str, postcode: str, city: str, country: str,
                  home_country: str) -> list[str]:
    """The recipient's lines in the address zone: name (up to 2 lines), street (up to 2), postcode and
    city, and the country when it is not the seller's (DIN 5008: in capitals, last line). Never more
    than six lines of at most ADDRESS_WIDTH units."""
    foreign = bool(country) and country != home_country
    country_line = _country_name(country).upper() if foreign else ""
    place = " ".join(part for part in (postcode.strip(), city.strip()) if part)
    lines = _fit(name, 2)
    street_lines = _fit(street, 2)
    place_lines = _fit(place, 1 if foreign else 2)
    budget = ADDRESS_LINES - (1 if country_line else 0)
    body = lines + street_lines + place_lines
    if len(body) > budget:  # name and street took two lines each and the place two: cut the street
        body = lines + street_lines[: budget - len(lines) - len(place_lines)] + place_lines
    return body + ([country_line[:ADDRESS_WIDTH]] if country_line else [])


def _country_name(code: str) -> str:
    from babel import Locale

    language = translation.get_language() or "de"
    try:
        return Locale.parse("de_DE" if language.startswith("de") else "en_GB").territories.get(code, code)
    except Exception:  # an unknown locale: the code itself
        return code


# --- the text ------------------------------------------------------------------------------------

def _paragraphs(text: str) -> list[str]:
    return [p.strip("\n") for p in re.split(r"\n\s*\n", text.replace("\r\n", "\n")) if p.strip()]


def _default_text(level: int) -> tuple[str, str, str]:
    """The built-in subject, text before the claim and text after it (in the active language), as
    Jinja2 sources with the same placeholders as staff templates."""
    subject = {
        1: _("Payment reminder for order {{ order.number }}"),
        2: _("Second payment reminder for order {{ order.number }}"),
        3: _("Final payment reminder for order {{ order.number }}"),
    }[level]
    body = _("Dear {{ customer_name }},\n\n"
             "according to our records, payment for your order {{ order.number }} of {{ order.ordered_at }}, "
             "due on {{ order.due_date }}, has not yet been received. Below is the amount now due.")
    closing = _("If you have paid in the meantime, please disregard this letter.\n\n"
                "Kind regards\n{{ sales_account.name }}")
    return subject, body, closing


@dataclass
class _CompiledLetter:
    subject: Any
    body: Any
    closing: Any


class LetterTextResolver:
    """The letter text of (account, level, language): the assignment's letter template, in the
    order's language when a template of that name exists in it, else the built-in text. Loads the
    assignments and templates once; compiles each template once."""

    def __init__(self, account_ids: Iterable[int] | None = None) -> None:
        assignments = ReminderAssignment.objects.filter(letter_template__isnull=False).select_related(
            "letter_template")
        if account_ids is not None:
            assignments = assignments.filter(sales_account_id__in=list(account_ids))
        self._assigned = {(a.sales_account_id, a.level): a.letter_template for a in assignments}
        names = {t.name for t in self._assigned.values()}
        self._by_name = {(t.name, t.language): t for t in LetterTemplate.objects.filter(name__in=names)}
        self._compiled: dict[Any, _CompiledLetter] = {}

    def template_for(self, account_id: int, level: int, language: str) -> LetterTemplate | None:
        assigned = self._assigned.get((account_id, level))
        if assigned is None:
            return None
        return self._by_name.get((assigned.name, language), assigned)

    def compiled(self, account_id: int, level: int, language: str) -> _CompiledLetter:
        template = self.template_for(account_id, level, language)
        key = template.pk if template else ("default", level, language)
        if key not in self._compiled:
            if template is None:
                with translation.override(language):
                    sources = _default_text(level)
            else:
                sources = (template.subject, template.body, template.closing)
            self._compiled[key] = _CompiledLetter(*(_env.from_string(s) for s in sources))
        return self._compiled[key]


# --- the letter ----------------------------------------------------------------------------------

@dataclass
class LetterAssets:
    """What several letters share: the text resolver and each account's logo as a data: URI."""

    texts: LetterTextResolver
    logos: dict[int, str]

    def logo(self, account) -> str:
        if account.pk not in self.logos:
            self.logos[account.pk] = _data_uri(account.logo) if account.logo else ""
        return self.logos[account.pk]


def _data_uri(field) -> str:
    try:
        with field.open("rb") as fh:
            data = fh.read()
    except (OSError, ValueError):  # the file is gone: a letter without logo
        return ""
    mime = mimetypes.guess_type(field.name)[0] or "image/png"
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _snapshot_claim(reminder: Reminder) -> SimpleNamespace:
    snap = reminder.claim_snapshot or {}
    total = reminder.order.total
    values = {name: Decimal(snap.get(name) or "0") for name in SNAPSHOT_FIELDS}
    if not snap:  # a reminder sent before claims were stored: the order total
        values["principal"] = values["total_due"] = total
    return SimpleNamespace(**values)


def letter_context(reminder: Reminder, assets: LetterAssets) -> dict[str, Any]:
    """The Django template context of `reminder`'s letter (call inside translation.override)."""
    order = reminder.order
    account = order.sales_account
    language = order.effective_language
    sent_on = local_date(reminder.sent_at or reminder.created_at)
    deadline = reminder.deadline or deadline_after(sent_on, DEFAULT_DEADLINE_DAYS)
    claim = _snapshot_claim(reminder)
    context = order_context(order, level=reminder.level, today=sent_on, language=language, claim=claim,
                            deadline=deadline)
    text = assets.texts.compiled(account.pk, reminder.level, language)
    subject = clean_subject(text.subject.render_limited(context, max_output=MAX_SUBJECT_OUTPUT))
    body = text.body.render_limited(context, max_output=MAX_BODY_OUTPUT)
    closing = text.closing.render_limited(context, max_output=MAX_BODY_OUTPUT)
    currency = order.currency

    def money(value: Decimal) -> str:
        return format_money(value, currency, language)

    rows = [(_("Order total"), money(claim.principal))]
    if claim.fees:
        rows.append((_("Dunning fees"), money(claim.fees)))
    if claim.flat_fee:
        rows.append((_("Flat fee for default (§ 288 (5) BGB)"), money(claim.flat_fee)))
    if claim.interest:
        rows.append((_("Default interest"), money(claim.interest)))
    if claim.paid:
        rows.append((_("Already paid"), "− " + money(claim.paid)))
    code: GiroCode | None = None
    try:
        code = girocode(account_holder=account.account_holder, iban=account.iban, bic=account.bic,
                        amount=claim.total_due, currency=currency, reference=order.number)
    except NoGiroCode:
        code = None
    missing_address = order.address_problems()
    return {
        "language": language,
        "account": account,
        "seller_name": account.letter_name,
        "seller_line": " · ".join(p for p in (account.letter_name, account.street,
                                                 f"{account.postcode} {account.city}".strip()) if p),
        "logo": assets.logo(account),
        "address": address_lines(name=order.customer_name, street=order.customer_street,
                                 postcode=order.customer_postcode, city=order.customer_city,
                                 country=order.customer_country, home_country=account.country),
        "missing_address": bool(missing_address),
        "missing": account.letter_problems(),
        "info": [
            (_("Order number"), order.number),
            (_("Customer number"), order.customer_number or "–"),
            (pgettext("letter", "Order date"), context["order"]["ordered_at"]),
            (_("Contact"), account.reply_to_email or account.sender_email),
            (_("Date"), format_day(sent_on, language)),
        ],
        "subject": subject,
        "body": _paragraphs(body),
        "closing": _paragraphs(closing),
        "rows": rows,
        "total_due": money(claim.total_due),
        "deadline": format_day(deadline, language),
        "iban": account.iban,
        "bic": account.bic,
        "account_holder": account.account_holder,
        "reference": order.number,
        "qr": code.png_data_uri() if code else "",
        "legal_details": account.legal_details,
    }


def letter_section(reminder: Reminder, assets: LetterAssets) -> str:
    """One letter as a <section> of the letters document (in the order's language)."""
    with translation.override(reminder.order.effective_language):
        return get_template(LETTER_SECTION).render(letter_context(reminder, assets))


def letters_html(sections: Sequence[str], *, title: str = "") -> str:
    """The HTML document of some letters (each a section that starts a page)."""
    return get_template(LETTERS_DOCUMENT).render({"sections": [mark_safe(s) for s in sections],  # noqa: S308
                                                  "title": title})


def letter_html(reminder: Reminder) -> str:
    assets = LetterAssets(texts=LetterTextResolver([reminder.order.sales_account_id]), logos={})
    with translation.override(reminder.order.effective_language):
        section = letter_section(reminder, assets)
        return letters_html([section], title=_("Reminder letter %(number)s") % {"number": reminder.order.number})


def _document(html: str):
    return pdf_render.layout(html)


def letters_queryset():
    return Reminder.objects.select_related("order__sales_account", "order__payment_method")


def render_letter_pdf(reminder: Reminder) -> bytes:
    """The letter of one reminder as a PDF."""
    return render_letters_pdf([reminder])


def render_letters_pdf(reminders: Sequence[Reminder], *, progress: Callable[[int], None] | None = None,
                       assets: LetterAssets | None = None) -> bytes:
    """The letters of `reminders`, in that order, as one PDF (each letter starts on a new page).

    Laid out DUNNING_LETTERS_PER_DOCUMENT letters to a document. Up to two documents are laid out
    here; more are laid out on every core (DUNNING_LETTER_PROCESSES processes, started fresh with
    `spawn`, which import only dunning.pdf_render): this process builds the HTML (the database and
    the templates stay here), the others turn it into PDF, and pypdf joins the parts. Where no
    process can be started, the same work is done here. `progress(done)` is called after each
    document."""
    if not reminders:
        raise ValueError("no letters to render")
    assets = assets or LetterAssets(texts=LetterTextResolver({r.order.sales_account_id for r in reminders}),
                                    logos={})
    size = max(1, settings.DUNNING_LETTERS_PER_DOCUMENT)
    chunks = [reminders[start:start + size] for start in range(0, len(reminders), size)]
    processes = min(settings.DUNNING_LETTER_PROCESSES, len(chunks))
    if len(chunks) > 2 and processes > 1:
        try:
            return _render_in_processes(chunks, assets, processes, progress)
        except (OSError, AssertionError, BrokenProcessPool) as exc:  # no processes here (a daemon, limits)
            logger.warning("letters rendered in one process: %s", exc)
    documents = []
    done = 0
    for chunk in chunks:
        documents.append(_document(letters_html([letter_section(r, assets) for r in chunk])))
        done += len(chunk)
        if progress is not None:
            progress(done)
    pages = [page for document in documents for page in document.pages]
    return documents[0].copy(pages).write_pdf()


def _render_in_processes(chunks: list[Sequence[Reminder]], assets: LetterAssets, processes: int,
                         progress: Callable[[int], None] | None) -> bytes:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
        futures = [pool.submit(pdf_render.html_to_pdf, letters_html([letter_section(r, assets) for r in chunk]))
                   for chunk in chunks]
        parts = []
        done = 0
        for future, chunk in zip(futures, chunks, strict=True):
            parts.append(future.result())
            done += len(chunk)
            if progress is not None:
                progress(done)
    return pdf_render.merge_pdfs(parts)


def letters_of(reminder_ids: Iterable[int]) -> list[Reminder]:
    """The reminders of `reminder_ids` with what their letters read, in the order of the ids."""
    ids = list(reminder_ids)
    by_id = letters_queryset().in_bulk(ids)
    return [by_id[i] for i in ids if i in by_id]
