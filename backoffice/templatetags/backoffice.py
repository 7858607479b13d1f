import functools
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django import template
from django.http import QueryDict
from django.template.defaultfilters import date as date_filter
from django.utils import dateformat
from django.utils.formats import get_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.timezone import template_localtime
from django.utils.translation import get_language

from common.formats import format_money
from dunning.models import DunningLevel
from dunning.selectors import Skip
from orders.services import BulkSkip

from ..filters import SELECTION_PARAMS

register = template.Library()


def active_language() -> str:
    """The active language as the formatters take it ("de", "en")."""
    return (get_language() or "de")[:2]


@register.filter
def money(value: Decimal | None, currency: str = "EUR") -> str:
    """An amount with its currency, formatted for the active language (49,90 € / €49.90)."""
    if value is None:
        return ""
    return format_money(value, currency or "EUR", active_language())


@register.filter
def money_sums(sums) -> SafeString:
    """Amounts per currency, [(currency, amount), ...], as "12.345,67 € + 99,00 CHF" ("" when none),
    each amount unbroken:
    amounts of different currencies are never added up."""
    amounts = ((format_money(amount, currency or "EUR", active_language()),) for currency, amount in sums or [])
    return format_html_join(" + ", '<span class="amount">{}</span>', amounts)


@register.filter
def date_or_dash(value, arg: str = "SHORT_DATE_FORMAT") -> str:
    """`|date` for the dates of an order: in the local time zone, "" when empty, and "—" for a
    value the local time zone cannot hold (stored near 9999-12-31 before dates were bounded),
    where `|date` would raise OverflowError."""
    return _local_day(value, functools.partial(date_filter, arg=arg))


def _local_day(value, format_local: Callable[[Any], str]) -> str:
    """`format_local(value)` of `value` in the local time zone; "" when empty, "—" when the local
    time zone cannot hold it."""
    if value in (None, ""):
        return ""
    try:
        value = template_localtime(value)
    except OverflowError:
        return "—"
    return format_local(value)


def day_formatter(arg: str = "SHORT_DATE_FORMAT") -> Callable[[Any], str]:
    """`date_or_dash(value, arg)` for many values of one page (`overview_rows`): the format of the
    active language looked up once instead of per value. For dates and datetimes (what
    `date_or_dash` is for) the same text."""
    resolved = get_format(arg)
    return functools.partial(_local_day, format_local=lambda value: dateformat.format(value, resolved))


@register.filter
def level_label(value) -> str:
    """A level (a DunningLevel, its value or its query spelling) as its label; none -> "–"."""
    try:
        return str(DunningLevel.coerce(value).label)
    except ValueError:
        return "–"


@register.filter
def skip_label(code: str) -> str:
    return Skip.label_of(code)


@register.filter
def bulk_skip_label(code: str) -> str:
    return BulkSkip.label_of(code)


@register.simple_tag(takes_context=True)
def query_with(context, **changes) -> str:
    """The current query string with some parameters set (or removed with None/""); the page
    number is dropped unless given, since a changed filter or sort starts on page 1."""
    return query_string_with(context["request"].GET, **changes)


def query_string_with(data: QueryDict, **changes) -> str:
    """`query_with` for a QueryDict. Copies its lists into a new QueryDict (QueryDict.copy() is a
    deepcopy: about 50 µs, some 20 times per overview page)."""
    params = QueryDict(mutable=True, encoding=data.encoding)
    for key, values in data.lists():
        params.setlist(key, list(values))
    for name in SELECTION_PARAMS:
        params.pop(name, None)
    if "page" not in changes:
        params.pop("page", None)
    for key, value in changes.items():
        if value in (None, ""):
            params.pop(key, None)
        else:
            params[key] = str(value)
    encoded = params.urlencode()
    return f"?{encoded}" if encoded else "?"


def _widget_attrs_html(field) -> SafeString:
    """The attributes of a bound field's widget as Django's attrs.html writes them (the widget's
    attrs, the field's, then the id; as BoundField.as_widget)."""
    widget = field.field.widget
    attrs = {**widget.attrs, **field.build_widget_attrs({}, widget)}
    if field.auto_id and "id" not in widget.attrs:
        attrs.setdefault("id", field.auto_id)
    return SafeString("".join(
        format_html(" {}", name) if value is True else format_html(' {}="{}"', name, value)
        for name, value in attrs.items() if value is not False and value is not None))


@register.filter
def input_box(field) -> SafeString:
    """A bound form field with an Input widget (the overview's search box) as the HTML Django's
    input widget template gives, in Python (the widget templates cost about 0.5 ms a page)."""
    widget = field.field.widget
    value = widget.format_value(field.value())
    value_html = format_html(' value="{}"', value) if value is not None else ""
    return format_html('<input type="{}" name="{}"{}{}>', widget.input_type, field.html_name, value_html,
                       _widget_attrs_html(field))


@register.filter
def select_box(field) -> SafeString:
    """A bound form field with a Select widget as the HTML Django's select widget template gives
    (name, id, the options, the selected one), in Python: the overview's four filter selects
    through the widget templates cost about 2.5 ms a page (docs/performance-notes.md)."""
    widget = field.field.widget
    selected = {"" if v is None else str(v) for v in widget.format_value(field.value())}
    options = []
    for value, label in field.field.choices:
        value = "" if value is None else str(value)
        options.append(format_html('\n  <option value="{}"{}>{}</option>', value,
                                   " selected" if value in selected else "", label))
        if value in selected:
            selected = set()  # a single select marks the first match only, as Django's widget does
    return format_html('<select name="{}"{}>{}\n</select>', field.html_name, _widget_attrs_html(field),
                       SafeString("".join(options)))
