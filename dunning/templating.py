"""Staff-written reminder templates: a sandboxed Jinja2 environment, a plain-data context, the
placeholder catalogue, validation on save and rendering with bounded cost.

Templates are compiled once per template and call (compiling costs ~1.6 ms, rendering ~20 us).

Staff write templates, so a template must neither escape the sandbox nor exhaust the worker that
renders it (`{{ 9**(9**9) }}`, `{{ 'x' * 10**9 }}`, nested loops that run for hours). Python threads
cannot be killed and a subprocess per reminder would cost milliseconds, so the sandbox itself keeps
every render bounded, in the rendering thread and deterministically:

- each single operation is checked before it runs: numbers stay below 10^100, strings, lists and
  printed values below 100,000 characters (`**`, `*`, `+`, `%` and `~`, container literals, the
  string methods and filters that can pad or multiply: `center`, `ljust`, `zfill`, `replace`,
  `format`, `indent`, `wordwrap`, `join`, `round`), so no step can build something huge;
- a render has a budget: 10,000 loop iterations and calls, 1,000,000 characters of work (values
  printed or built, static text repeated by loops), one second of wall-clock time checked at each
  of those steps, and an output limit (1,000 characters for the subject, 100,000 for a body),
  enforced while the output is generated;
- the language is narrowed to what a reminder needs: no macros, call blocks, blocks, includes or
  recursive loops, no Jinja globals but a capped `range`, a list of safe filters, and calls only of
  harmless string and dict methods. Loops get a counting iterator by rewriting the parsed template
  (`nodes.Call` of an `EnvironmentAttribute`), so even a loop that prints and calls nothing counts.

A template over a limit is refused when saved (a validation error naming the limit); one that was
written into the database directly fails its reminders with that error when sent (and fails at once
for the rest of the run), and the previews show it. The checks cost a few microseconds a render."""

from __future__ import annotations

import contextvars
import dataclasses
import datetime
import functools
import re
import time
import types
from collections.abc import ItemsView, KeysView, ValuesView
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.formats import number_format
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from jinja2 import (
    StrictUndefined,
    Template,
    TemplateError,
    TemplateRuntimeError,
    TemplateSyntaxError,
    Undefined,
    meta,
    nodes,
    pass_eval_context,
)
from jinja2.runtime import LoopContext, markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter, SecurityError
from jinja2.visitor import NodeTransformer
from markupsafe import EscapeFormatter, Markup

from common.dates import local_date, local_today
from common.formats import format_day, format_money, format_number

from .claim import SNAPSHOT_FIELDS, Claim, claim_compute, deadline_after
from .girocode import NoGiroCode, girocode


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
    Placeholder("deadline", _("Payment deadline this reminder sets (a working day)"), "03.12.2026"),
    Placeholder("claim.principal", _("Claim: the principal (order total), with currency"), "1.249,90 €"),
    Placeholder("claim.paid", _("Claim: what the customer already paid"), "0,00 €"),
    Placeholder("claim.fees", _("Claim: dunning fees charged so far"), "2,50 €"),
    Placeholder("claim.flat_fee", _("Claim: the 40 EUR flat fee (business customers, if charged)"), "0,00 €"),
    Placeholder("claim.interest", _("Claim: default interest up to today"), "1,50 €"),
    Placeholder("claim.total_due", _("Claim: total due (principal + fees + interest - paid)"), "1.253,90 €"),
    Placeholder("payment_qr", _("HTML body only: the payment QR code (GiroCode) with the account holder, IBAN, "
                                "total due and order number, as an inline image. Empty for a claim not in "
                                "EUR or over 999,999,999.99 EUR (the EPC standard allows no code), and where "
                                "the sales account has no IBAN or account holder"), "[QR]"),
]

PAYMENT_QR_CID = "payment-qr"
PAYMENT_QR_IMG = Markup('<img src="cid:payment-qr" alt="GiroCode" width="164" height="164">')  # a constant


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
    claim: Claim,
    deadline: datetime.date,
) -> dict[str, Any]:
    """The plain-data context of one reminder: only strings and numbers, nothing with methods."""
    money = format_money(total, currency, language)
    return {
        "claim": {name: format_money(getattr(claim, name), currency, language) for name in SNAPSHOT_FIELDS},
        "deadline": format_day(deadline, language),
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
        "payment_qr": "",  # the HTML body gets the image (CompiledTemplate.render)
    }


def order_context(order, *, level: int, today: datetime.date, language: str, claim: Claim,
                  deadline: datetime.date) -> dict[str, Any]:
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
        claim=claim,
        deadline=deadline,
    )


def sample_context(language: str = "de", level: int = 1) -> dict[str, Any]:
    """The sample order of the template page and of validation: a consumer, fees 2.50 from level 2 on,
    interest on, the first reminder's deadline 19.11.2026 (at level 1: this reminder's)."""
    today = datetime.date(2026, 11, 26)
    deadline = deadline_after(today, 7)
    claim = claim_compute(
        total=Decimal("1249.90"), currency="EUR", is_business=False, due_date=datetime.date(2026, 11, 15),
        first_deadline=deadline if level == 1 else datetime.date(2026, 11, 19), levels_sent=range(1, level + 1),
        fees={1: Decimal("0"), 2: Decimal("2.50"), 3: Decimal("2.50")}, charge_flat_fee_b2b=False,
        charge_interest=True, base_rates=[(datetime.date(2026, 1, 1), Decimal("1.27"))], payments=[], on=today)
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
        claim=claim,
        deadline=deadline,
    )


# --- limits -------------------------------------------------------------------------------------

MAX_SOURCE = 100_000  # characters of template source
MAX_VALUE = 100_000  # characters of any single value built or printed (and of a body's output)
MAX_SUBJECT_OUTPUT = 1_000  # characters a subject may render to (it is cut to 255 afterwards)
MAX_BODY_OUTPUT = 100_000  # characters a text or HTML body may render to
MAX_ITEMS = 10_000  # elements of a list or dict, counted through nested ones
MAX_DIGITS = 100  # digits of an integer
MAX_STEPS = 10_000  # loop iterations and calls in one render
MAX_WORK = 1_000_000  # characters printed, built or repeated by loops in one render
MAX_SECONDS = 1.0  # wall-clock time of one render, checked at every step

_INT_LIMIT = 10**MAX_DIGITS
_POWER_BITS = 340  # a power whose result has more bits than this is refused before it is computed


class TemplateLimitError(TemplateRuntimeError):
    """A template went over one of the limits; the message (in the active language) says which."""


class NotAllowedError(SecurityError):
    """A construct or call the reminder templates do not allow."""


def _too_large(limit: int = MAX_VALUE) -> TemplateLimitError:
    return TemplateLimitError(gettext("Result too large (more than %(limit)s characters).")
                              % {"limit": number_format(limit, force_grouping=True)})


def _number_too_large() -> TemplateLimitError:
    return TemplateLimitError(gettext("Number too large (more than %(limit)s digits).") % {"limit": MAX_DIGITS})


def _too_many_steps() -> TemplateLimitError:
    return TemplateLimitError(gettext("Too many steps (more than %(limit)s loop iterations and calls).")
                              % {"limit": number_format(MAX_STEPS, force_grouping=True)})


def _source_too_long() -> TemplateLimitError:
    return TemplateLimitError(gettext("Template too long (at most %(limit)s characters).")
                              % {"limit": number_format(MAX_SOURCE, force_grouping=True)})


def _too_deep() -> TemplateLimitError:
    return TemplateLimitError(gettext("Template too deeply nested."))


def _not_allowed_call(name: str) -> NotAllowedError:
    return NotAllowedError(gettext("Calling “%(name)s” is not allowed.") % {"name": name})


class _Budget:
    """What one render may still spend. Lives in a context variable while the render runs."""

    __slots__ = ("steps", "work", "deadline")

    def __init__(self) -> None:
        self.steps = MAX_STEPS
        self.work = MAX_WORK
        self.deadline = time.monotonic() + MAX_SECONDS

    def step(self, work: int = 0) -> None:
        """A loop iteration, a call or an operator. Only steps repeat, so the clock is read here."""
        self.steps -= 1
        if self.steps < 0:
            raise _too_many_steps()
        if time.monotonic() >= self.deadline:
            raise TemplateLimitError(gettext("Rendering took too long (more than %(limit)s s).")
                                     % {"limit": f"{MAX_SECONDS:g}"})
        if work:
            self.charge(work)

    def charge(self, work: int) -> None:
        self.work -= work
        if self.work < 0:
            raise TemplateLimitError(gettext("Too much work (more than %(limit)s characters processed).")
                                     % {"limit": number_format(MAX_WORK, force_grouping=True)})


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("template_budget", default=None)


def _budget() -> _Budget:
    budget = _BUDGET.get()
    if budget is None:  # fail closed: loops, calls and operators only run inside a limited render
        raise TemplateLimitError("templates render through render_limited()")
    return budget


def _charge(work: int) -> None:
    budget = _BUDGET.get()
    if budget is not None:  # None while Jinja folds constants at compile time: sizes are still checked
        budget.charge(work)


_SEQUENCES = (list, tuple, set, frozenset, KeysView, ValuesView, ItemsView)


def _size_of(value: Any) -> int:
    """About how many characters `value` prints as; raises when it is (or holds) more than the
    limits allow. Walks nested lists and dicts, visiting at most MAX_ITEMS elements."""
    if isinstance(value, str):
        size = len(value)
        if size > MAX_VALUE:
            raise _too_large()
        return size
    if isinstance(value, int):
        if not -_INT_LIMIT < value < _INT_LIMIT:
            raise _number_too_large()
        return value.bit_length() // 3 + 2
    if isinstance(value, float) or value is None:
        return 24
    if not isinstance(value, (dict, range, *_SEQUENCES)):
        return 64  # Undefined, the loop object, iterators: short representations
    total = 0
    count = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) + 4
        elif isinstance(item, int):
            total += _size_of(item) + 2
        elif isinstance(item, dict):
            count += 2 * len(item)
            if count > MAX_ITEMS:
                raise _too_large()
            stack.extend(item.keys())
            stack.extend(item.values())
            total += 2
        elif isinstance(item, _SEQUENCES):
            count += len(item)
            if count > MAX_ITEMS:
                raise _too_large()
            stack.extend(item)
            total += 2
        elif isinstance(item, range):
            count += len(item)
            if count > MAX_ITEMS:
                raise _too_large()
            total += len(item) * (max(len(str(item.start)), len(str(item.stop))) + 2)
        else:
            total += 26
        if total > MAX_VALUE:
            raise _too_large()
    return total


def _checked(value: Any) -> Any:
    """`value` after checking and charging its size."""
    _charge(_size_of(value))
    return value


def _finalize(value: Any) -> Any:
    """Every printed expression passes here (Jinja's `finalize`): the hot path, kept short."""
    size = len(value) if value.__class__ is str else _size_of(value)
    if size > MAX_VALUE:
        raise _too_large()
    budget = _BUDGET.get()
    if budget is not None:
        budget.work -= size
        if budget.work < 0:
            budget.charge(0)  # raises
    return value


_PERCENT_SPEC = re.compile(r"%%|%(?:\([^)]*\))?[#0 +\-]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_percent(template: str, args: Any) -> None:
    """`template % args` (the operator and the `format` filter): widths and precisions count."""
    size = len(template) + _size_of(args)
    for match in _PERCENT_SPEC.finditer(template):
        for number in match.groups():
            if number == "*" or (number and len(number) > 6):
                raise _too_large()
            size += int(number or 0)
    if size > MAX_VALUE:
        raise _too_large()


_SPEC_NUMBER = re.compile(r"\d+")


class _LimitedFormatter(SandboxedFormatter):
    """`str.format`: Jinja's sandboxed formatter, with widths and precisions counted."""

    def format_field(self, value: Any, format_spec: str) -> str:
        size = _size_of(value)
        for number in _SPEC_NUMBER.findall(str(format_spec)):
            if len(number) > 6:
                raise _too_large()
            size += int(number)
        if size > MAX_VALUE:
            raise _too_large()
        return super().format_field(value, format_spec)

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        _size_of(value)  # before repr() or str() runs on it
        return super().convert_field(value, conversion)


class _LimitedEscapeFormatter(_LimitedFormatter, EscapeFormatter):
    pass


class _SafeFormat:
    """What `'...'.format` and `format_map` give in a template."""

    __slots__ = ("_environment", "_string", "_is_map")

    def __init__(self, environment: _LimitedEnvironment, string: str, is_map: bool) -> None:
        self._environment, self._string, self._is_map = environment, string, is_map

    def __repr__(self) -> str:
        return "<format method>"

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        string = self._string
        if self._is_map:
            if kwargs or len(args) != 1:
                raise TypeError("format_map() takes exactly one argument")
            args, kwargs = (), args[0]
        if isinstance(string, Markup):
            formatter: _LimitedFormatter = _LimitedEscapeFormatter(self._environment, escape=string.escape)
        else:
            formatter = _LimitedFormatter(self._environment)
        return type(string)(formatter.vformat(string, args, kwargs))


# Methods a template may call, by the type they belong to: none of them returns more than it gets.
_STR_METHODS = frozenset({
    "capitalize", "casefold", "count", "endswith", "find", "index", "isalnum", "isalpha", "isascii",
    "isdecimal", "isdigit", "islower", "isnumeric", "isspace", "istitle", "isupper", "lower", "lstrip",
    "partition", "removeprefix", "removesuffix", "rfind", "rindex", "rpartition", "rsplit", "rstrip", "split",
    "splitlines", "startswith", "strip", "swapcase", "title", "upper",
})
_STR_PADDING = frozenset({"center", "ljust", "rjust", "zfill"})  # the result is as wide as the argument
_DICT_METHODS = frozenset({"get", "items", "keys", "values"})
_SEQUENCE_METHODS = frozenset({"count", "index"})
_LOOP_METHODS = frozenset({"changed", "cycle"})


def _check_call(obj: Any, args: tuple) -> None:
    """Refuse calls other than harmless methods; check the arguments of those that can pad or grow."""
    if isinstance(obj, _SafeFormat | Undefined):  # format checks itself; calling Undefined raises its error
        return
    owner = getattr(obj, "__self__", None)
    name = getattr(obj, "__name__", type(obj).__name__)
    if not isinstance(obj, types.BuiltinMethodType | types.MethodType):
        raise _not_allowed_call(name)
    if isinstance(owner, str):
        if name in _STR_METHODS:
            return
        if name in _STR_PADDING:
            width = args[0] if args else 0
            if isinstance(width, int) and width > MAX_VALUE:
                raise _too_large()
            return
        if name == "replace":
            if len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
                _check_replace(owner, args[0], args[1], args[2] if len(args) > 2 else -1)
            return
    elif isinstance(owner, dict):
        if name in _DICT_METHODS:
            return
    elif isinstance(owner, list | tuple):
        if name in _SEQUENCE_METHODS:
            return
    elif isinstance(owner, LoopContext) and name in _LOOP_METHODS:
        return
    raise _not_allowed_call(name)


def _check_replace(string: str, old: str, new: str, count: Any) -> None:
    found = string.count(old) if old else len(string) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    if len(string) + found * (len(new) - len(old)) > MAX_VALUE:
        raise _too_large()


def _check_power(base: Any, exponent: Any) -> None:
    if (isinstance(base, int) and isinstance(exponent, int) and exponent > 0
            and (abs(base).bit_length() - 1) * exponent > _POWER_BITS):
        raise _number_too_large()


def _check_repeat(left: Any, right: Any) -> None:
    if isinstance(left, int) and not isinstance(right, int):
        left, right = right, left
    if (isinstance(right, int) and isinstance(left, str | list | tuple) and right > 0
            and max(_size_of(left), len(left)) * right > MAX_VALUE):
        raise _too_large()


def _check_sum(left: Any, right: Any) -> None:
    if (isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple)
            and _size_of(left) + _size_of(right) > MAX_VALUE):
        raise _too_large()


# --- the guards the parsed template is rewritten to call ---


def _limited_range(*args: int) -> range:
    numbers = range(*args)
    try:
        length = len(numbers)
    except OverflowError:
        length = MAX_STEPS + 1
    if length > MAX_STEPS:
        raise _too_many_steps()
    return numbers


def _limited_iter(iterable: Any, weight: int):
    """What a `{% for %}` loop iterates: every element is a step and costs the loop body's static text."""
    budget = _budget()
    for item in iterable:
        budget.step(weight)
        yield item


@pass_eval_context
def _limited_concat(eval_ctx, *items: Any) -> str:
    """The `~` operator."""
    size = sum(_size_of(item) for item in items)
    if size > MAX_VALUE:
        raise _too_large()
    _charge(size)
    return markup_join(items) if eval_ctx.autoescape else str_join(items)


def _guard(name: str, args: list[nodes.Expr], lineno: int) -> nodes.Call:
    return nodes.Call(nodes.EnvironmentAttribute(name, lineno=lineno), args, [], None, None, lineno=lineno)


_NOT_ALLOWED_TAGS = {
    nodes.Macro: "{% macro %}", nodes.CallBlock: "{% call %}", nodes.Block: "{% block %}",
    nodes.Extends: "{% extends %}", nodes.Include: "{% include %}", nodes.Import: "{% import %}",
    nodes.FromImport: "{% from … import %}",
}


def _not_allowed_tag(tag: str) -> NotAllowedError:
    return NotAllowedError(gettext("“%(tag)s” is not allowed.") % {"tag": tag})


class _Limiter(NodeTransformer):
    """Rewrites a parsed template so that loops count their steps, `~` and container literals check
    their size, and refuses the tags reminder templates do not need."""

    def generic_visit(self, node: nodes.Node, *args: Any, **kwargs: Any) -> nodes.Node:
        tag = _NOT_ALLOWED_TAGS.get(type(node))
        if tag:
            raise _not_allowed_tag(tag)
        return super().generic_visit(node, *args, **kwargs)

    def visit_For(self, node: nodes.For) -> nodes.Node:
        if node.recursive:
            raise _not_allowed_tag("{% for … recursive %}")
        self.generic_visit(node)
        weight = sum(len(data.data) for data in node.find_all(nodes.TemplateData))
        node.iter = _guard("limited_iter", [node.iter, nodes.Const(weight, lineno=node.lineno)], node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _guard("limited_concat", node.nodes, node.lineno)

    def _container(self, node: nodes.Node) -> nodes.Node:
        self.generic_visit(node)
        if getattr(node, "ctx", "load") != "load":
            return node
        return _guard("limited_container", [node], node.lineno)

    visit_List = visit_Tuple = visit_Dict = _container


# --- filters ---

SAFE_FILTERS = frozenset({
    "abs", "attr", "capitalize", "center", "count", "d", "default", "e", "escape", "filesizeformat", "first",
    "float", "forceescape", "format", "indent", "int", "join", "last", "length", "list", "lower", "max", "min",
    "replace", "reverse", "round", "safe", "sort", "string", "sum", "title", "trim", "truncate", "unique",
    "upper", "urlencode", "wordcount", "wordwrap",
})


def _arg(args: tuple, kwargs: dict, index: int, name: str, default: Any = None) -> Any:
    return args[index] if len(args) > index else kwargs.get(name, default)


def _predict_filter(name: str, value: Any, args: tuple, kwargs: dict) -> Any:
    """Checks the filters whose result can be much larger than what goes in; returns the value to
    filter (an iterator becomes a list, so that its size can be checked)."""
    if name == "center":
        width = _arg(args, kwargs, 0, "width", 80)
        if isinstance(width, int) and width > MAX_VALUE:
            raise _too_large()
    elif name == "indent":
        text = str(value)
        width = _arg(args, kwargs, 0, "width", 4)
        indent = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
        if len(text) + (text.count("\n") + 2) * indent > MAX_VALUE:
            raise _too_large()
    elif name == "wordwrap":
        text = str(value)
        width = _arg(args, kwargs, 0, "width", 79)
        wrap = _arg(args, kwargs, 2, "wrapstring", None) or "\n"
        if isinstance(width, int) and width > 0:
            lines = len(text) // width + len(text.split()) + text.count("-") + text.count("\n") + 1
            if len(text) + lines * len(str(wrap)) > MAX_VALUE:
                raise _too_large()
            _charge(10 * len(text))  # textwrap works in Python, character by character
    elif name == "replace":
        old, new = _arg(args, kwargs, 0, "old", ""), _arg(args, kwargs, 1, "new", "")
        _check_replace(str(value), str(old), str(new), _arg(args, kwargs, 2, "count", None))
    elif name == "format":
        _check_percent(str(value), kwargs or args)
    elif name == "join":
        if not isinstance(value, (str, dict, range, *_SEQUENCES)):
            value = list(value)  # iterators here come from lists the template already holds
        separator = str(_arg(args, kwargs, 0, "d", ""))
        if _size_of(value) + len(value) * len(separator) > MAX_VALUE:
            raise _too_large()
    elif name == "round":
        precision = _arg(args, kwargs, 0, "precision", 0)
        if isinstance(precision, int) and abs(precision) > MAX_DIGITS:
            raise _number_too_large()
    elif name == "sum":
        start = _arg(args, kwargs, 1, "start", 0)
        if not isinstance(start, int | float):
            raise TypeError("sum adds numbers only")
    return value


def _limited_filter(name: str, func: Any) -> Any:
    offset = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0  # environment or eval context first

    @functools.wraps(func)  # keeps jinja_pass_arg, so Jinja passes the same first argument
    def limited(*args: Any, **kwargs: Any) -> Any:
        passed, value, rest = args[:offset], args[offset], args[offset + 1:]
        _charge(_size_of(value))
        for argument in (*rest, *kwargs.values()):
            _size_of(argument)
        value = _predict_filter(name, value, rest, kwargs)
        return _checked(func(*passed, value, *rest, **kwargs))

    return limited


# --- the environment ---


class _LimitedTemplate(Template):
    """A template whose render() stays within the limits; render_limited() sets the output limit."""

    def render(self, *args: Any, **kwargs: Any) -> str:
        return self.render_limited(dict(*args, **kwargs), max_output=MAX_BODY_OUTPUT)

    def render_limited(self, context: dict[str, Any], *, max_output: int) -> str:
        """Render within a fresh budget, stopping as soon as the output passes `max_output`."""
        token = _BUDGET.set(_Budget())
        try:
            parts: list[str] = []
            append = parts.append
            size = 0
            try:  # as Template.generate(), without its extra generator
                for part in self.root_render_func(self.new_context(dict(context))):
                    size += len(part)
                    if size > max_output:
                        raise _too_large(max_output)
                    append(part)
            except Exception:
                self.environment.handle_exception()  # re-raises, with the template's line in the traceback
            return "".join(parts)
        finally:
            _BUDGET.reset(token)


class _LimitedEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox with the limits above (see the module docstring)."""

    intercepted_binops = frozenset({"+", "*", "**", "%"})
    template_class = _LimitedTemplate

    def __init__(self, **options: Any) -> None:
        super().__init__(finalize=_finalize, **options)
        self.globals.clear()
        self.globals["range"] = _limited_range
        self.filters = {name: _limited_filter(name, func) for name, func in self.filters.items()
                        if name in SAFE_FILTERS}
        self.limited_iter = _limited_iter
        self.limited_concat = _limited_concat
        self.limited_container = _checked

    def from_string(self, source, globals=None, template_class=None):  # type: ignore[override]
        if isinstance(source, str):
            if len(source) > MAX_SOURCE:
                raise _source_too_long()
            try:
                tree = self.parse(source)
                _Limiter().visit(tree)
                tree.set_environment(self)
                return super().from_string(tree, globals, template_class)
            except (RecursionError, MemoryError, SyntaxError):
                # Jinja's parser or Python's compiler gave up on deep nesting (or on 20 nested loops)
                raise _too_deep() from None
        raise TypeError("templates are compiled from their source text")

    def call_binop(self, context, operator: str, left: Any, right: Any) -> Any:
        budget = _budget()
        budget.step()
        if operator == "**":
            _check_power(left, right)
        elif operator == "*":
            _check_repeat(left, right)
        elif operator == "+":
            _check_sum(left, right)
        elif isinstance(left, str):  # "%": formatting
            _check_percent(left, right)
        result = self.binop_table[operator](left, right)
        budget.charge(_size_of(result))
        return result

    def call(__self, __context, __obj, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 (Jinja's signature)
        if __obj is _limited_iter or __obj is _limited_concat or __obj is _checked:  # the rewrite's guards
            return __context.call(__obj, *args, **kwargs)
        budget = _budget()
        budget.step()
        if __obj is not _limited_range:
            _check_call(__obj, args)
        result = super().call(__context, __obj, *args, **kwargs)
        budget.charge(_size_of(result))
        return result

    def wrap_str_format(self, value: Any) -> _SafeFormat | None:
        if not isinstance(value, types.MethodType | types.BuiltinMethodType) or value.__name__ not in (
                "format", "format_map"):
            return None
        if not isinstance(value.__self__, str):
            return None
        return _SafeFormat(self, value.__self__, value.__name__ == "format_map")


_env = _LimitedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
_html_env = _LimitedEnvironment(undefined=StrictUndefined, autoescape=True)


# --- validation ---------------------------------------------------------------------------------

def _problem_text(exc: Exception) -> str:
    if isinstance(exc, TemplateLimitError | NotAllowedError):
        return str(exc)
    return gettext("The template fails with the sample order: %(error)s") % {"error": f"{type(exc).__name__}: {exc}"}


_UNKNOWN_FILTER = re.compile(r"No (filter|test) named '([^']*)'")


def _compile_problem_text(exc: TemplateError) -> str:
    """Jinja's compile errors in the staff's language: mostly an unknown filter or test."""
    found = _UNKNOWN_FILTER.search(str(exc))
    if found and found.group(1) == "filter":
        return gettext("Unknown filter “%(name)s”.") % {"name": found.group(2)}
    if found:
        return gettext("Unknown test “%(name)s”.") % {"name": found.group(2)}
    return gettext("The template cannot be compiled: %(error)s") % {"error": exc}


def _check_source(source: str, env: _LimitedEnvironment, max_output: int) -> list[str]:
    """Syntax, unknown placeholders, unknown attributes and access to internals, found without
    rendering, so that branches not taken with the sample data are checked too; then limits, by
    rendering with the sample order at each level."""
    if len(source) > MAX_SOURCE:
        return [str(_source_too_long())]
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as exc:
        return [str(_("Syntax error in line %(line)s: %(message)s") % {"line": exc.lineno, "message": exc.message})]
    except RecursionError:
        return [str(_too_deep())]
    try:
        compiled = env.from_string(source)  # unknown filters fail when compiling, and refused tags
    except TemplateError as exc:
        return [_compile_problem_text(exc)]
    problems: list[str] = []
    sample = sample_context()
    for name in sorted(meta.find_undeclared_variables(tree)):
        if name not in sample:
            problems.append(str(_("Unknown placeholder “%(name)s”.") % {"name": name}))
    for node in tree.find_all(nodes.Name):
        if node.name == "self":  # Jinja's reference to the template itself
            problems.append(str(_("Unknown placeholder “%(name)s”.") % {"name": node.name}))
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
    if problems:
        return problems
    for level in (1, 2, 3):  # a branch on the level is rendered too
        try:
            compiled.render_limited(sample_context(level=level), max_output=max_output)
        except Exception as exc:  # anything a template does wrong with sample data is the author's error
            return [_problem_text(exc)]
    return []


def validate_template_fields(*, subject: str, body: str, html_body: str = "", closing: str = "") -> None:
    """E-mail templates (subject, body, html_body) and letter templates (subject, body, closing)."""
    errors: dict[str, list[str]] = {}
    for field, source, env, max_output in (("subject", subject, _env, MAX_SUBJECT_OUTPUT),
                                           ("body", body, _env, MAX_BODY_OUTPUT),
                                           ("html_body", html_body, _html_env, MAX_BODY_OUTPUT),
                                           ("closing", closing, _env, MAX_BODY_OUTPUT)):
        if not source:
            continue
        problems = _check_source(source, env, max_output)
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
    inline_images: dict[str, bytes] = dataclasses.field(default_factory=dict)  # Content-ID -> PNG of the HTML body


class CompiledTemplate:
    """An EmailTemplate compiled once; render() is cheap and bounded (see the limits above). Once a
    render went over a limit, later renders fail at once with the same error: a run with hundreds
    of reminders of a booby-trapped template does not spend the limits hundreds of times."""

    def __init__(self, template) -> None:
        self.template = template
        self._subject = _env.from_string(template.subject)
        self._body = _env.from_string(template.body)
        self._html = _html_env.from_string(template.html_body) if template.html_body else None
        # the QR code is made only for templates that show it (a PNG costs about a millisecond)
        self.uses_payment_qr = bool(template.html_body) and "payment_qr" in meta.find_undeclared_variables(
            _html_env.parse(template.html_body))
        self._over_limit: str | None = None

    def render(self, context: dict[str, Any], *, payment_qr_png: bytes | None = None) -> RenderedEmail:
        if self._over_limit is not None:
            raise TemplateLimitError(self._over_limit)
        html_context = {**context, "payment_qr": PAYMENT_QR_IMG} if payment_qr_png else context
        try:
            return RenderedEmail(
                subject=clean_subject(self._subject.render_limited(context, max_output=MAX_SUBJECT_OUTPUT)),
                body=self._body.render_limited(context, max_output=MAX_BODY_OUTPUT),
                html_body=self._html.render_limited(html_context, max_output=MAX_BODY_OUTPUT) if self._html else "",
                inline_images={PAYMENT_QR_CID: payment_qr_png} if payment_qr_png and self._html else {},
            )
        except TemplateLimitError as exc:
            self._over_limit = str(exc)
            raise


def render_reminder(compiled: CompiledTemplate, order, *, level: int, now: datetime.datetime, claim: Claim,
                    deadline: datetime.date) -> RenderedEmail:
    """The reminder of `level` for `order` as it goes out at `now`, in the order's language: what the
    engine sends, the Notify confirmation previews, and the demo and the benchmark write. The engine
    passes the `claim` and `deadline` it computed for the chunk; a single preview gets them from
    `dunning.selectors.order_claim_on(order, now=now, level=level)`."""
    language = order.effective_language
    png = None
    if compiled.uses_payment_qr:
        account = order.sales_account
        try:
            png = girocode(account_holder=account.account_holder, iban=account.iban, bic=account.bic,
                           amount=claim.total_due, currency=order.currency, reference=order.number).png()
        except NoGiroCode:
            png = None  # the placeholder stays empty; the template page says when
    return compiled.render(order_context(order, level=level, today=local_today(now), language=language,
                                         claim=claim, deadline=deadline), payment_qr_png=png)
