"""The rows of the open-payments overview as HTML, built in Python: the same markup the row of
open_payments.html built with about 40 template tags and filters per row (50 rows: 2,000 node
renders, a third of the page's time), now string formatting with the texts translated once per
page (docs/performance-notes.md). Every value from the data is escaped."""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any

from django.http import QueryDict
from django.urls import reverse
from django.utils.html import conditional_escape, escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext, ngettext

from common.formats import format_money
from dunning.models import DunningLevel
from orders.models import Order

from .templatetags.backoffice import active_language, day_formatter, query_string_with

_PK = 987654321987654321  # a number no order id is: the detail URL is built once per page


def _e(value) -> str:
    # the characters Django's `escape` replaces (it calls `html.escape`), without its lazy-string
    # wrapper and SafeString per value
    return html.escape("" if value is None else str(value))


class RowRenderer:
    """Renders rows for one page: the texts and the URL pattern are looked up once."""

    def __init__(self, *, checked_ids: set[int]) -> None:
        self.checked = checked_ids
        self.detail_url = escape(reverse("backoffice:order_detail", args=[_PK]))
        t = conditional_escape
        self.t_total_due = t(gettext("Today: principal + fees + interest − paid"))
        self.t_not_yet_due = t(gettext("not yet due"))
        self.t_cancelled = t(gettext("cancelled"))
        self.t_partly_paid = t(gettext("partly paid"))
        self.t_blocked = t(gettext("blocked"))
        self.t_flagged = t(gettext("flagged for cancellation"))
        self.t_no_email = t(gettext("no e-mail"))
        self.t_bounced = t(gettext("address bounced"))
        self.t_send_failed = t(gettext("last send failed"))
        self.t_unknown = t(gettext("outcome unknown"))
        self.t_in_flight = t(gettext("in flight"))
        self.select_order = gettext("Select order %(number)s")
        self.paid_day = gettext("paid %(day)s")
        self.paid_so_far = gettext("Paid so far: %(paid)s")
        self.outstanding = gettext("%(amount)s outstanding")
        self.levels = {level.value: escape(str(level.label)) for level in DunningLevel}
        # the date format and the language once per page, not per value
        self.day = day_formatter("SHORT_DATE_FORMAT")
        self.language = active_language()

    def money(self, value, currency: str) -> str:
        """`money` of the template tags, the language resolved once."""
        return "" if value is None else format_money(value, currency or "EUR", self.language)

    def due_in(self, days: int) -> str:
        return ngettext("due in %(counter)s day", "due in %(counter)s days", days) % {"counter": days}

    def row(self, order: Order) -> str:
        pk = str(order.pk)
        number = _e(order.number)
        currency = order.currency
        name, email = _e(order.customer_name), _e(order.customer_email)
        method, account = _e(order.payment_method.name), _e(order.sales_account.name)
        claim = order.claim
        due = _e(self.money(claim.total_due, currency)) if claim else "–"
        if order.due_in:
            overdue = (f'<td class="num muted due-in" title="{self.t_not_yet_due}">{self.due_in(order.due_in)}</td>')
        else:
            overdue = f'<td class="num">{"—" if order.overdue is None else order.overdue}</td>'
        last = _e(self.day(order.last_reminder_at)) if order.last_reminder_at else "–"
        level = order.current_level
        if level:
            level_cell = f'<span class="level-pill level-{level}">{self.levels.get(level, "–")}</span>'
        else:
            level_cell = '<span class="muted">–</span>'
        return (
            f'<tr class="{"row-warn" if order.outcome_unknown else ""}">\n'
            f'        <td class="check"><input type="checkbox" name="ids" value="{pk}" class="action-select"'
            f'{" checked" if order.pk in self.checked else ""} '
            f'aria-label="{self.select_order % {"number": number}}"></td>\n'
            f'        <td class="number" title="{number}"><a href="{self.detail_url.replace(str(_PK), pk)}">'
            f'{number}</a></td>\n'
            f'        <td class="date">{_e(self.day(order.ordered_at))}</td>\n'
            f'        <td class="customer" title="{name}">{name}</td>\n'
            f'        <td class="email" title="{email}">{email or "–"}</td>\n'
            f'        <td class="num amount">{_e(self.money(order.total, currency))}</td>\n'
            f'        <td class="num amount total-due" title="{self.t_total_due}">{due}</td>\n'
            f'        <td title="{method}">{method}</td>\n'
            f'        <td title="{account}">{account}</td>\n'
            f'        {overdue}\n'
            f'        <td class="num sent-reminders">{order.reminders_sent}</td>\n'
            f'        <td class="date">{last}</td>\n'
            f'        <td class="level">{level_cell}</td>\n'
            f'        <td class="badges">\n{self.badges(order)}        </td>\n'
            f'      </tr>'
        )

    def badges(self, order: Order) -> str:
        currency = order.currency
        out = []
        if order.paid_at:
            day = _e(self.day(order.paid_at))
            out.append(f'<span class="badge closed-paid" title="{day}">{self.paid_day % {"day": day}}</span>')
        elif order.cancelled_at:
            out.append(f'<span class="badge closed-cancelled">{self.t_cancelled}</span>')
        if getattr(order, "paid_amount", None):
            paid = self.paid_so_far % {"paid": _e(self.money(order.paid_amount, currency))}
            amount = self.outstanding % {"amount": _e(self.money(order.outstanding, currency))}
            out.append(f'<span class="badge partly-paid" title="{paid}">{self.t_partly_paid}<br>'
                       f'<span class="outstanding">{amount}</span></span>')
        if order.dunning_blocked:
            out.append(f'<span class="badge blocked" title="{_e(order.dunning_block_reason)}">{self.t_blocked}</span>')
        if order.flagged_for_cancellation_at:
            day = _e(self.day(order.flagged_for_cancellation_at))
            out.append(f'<span class="badge flagged" title="{day}">{self.t_flagged}</span>')
        if not order.customer_email:
            out.append(f'<span class="badge no-email">{self.t_no_email}</span>')
        if order.address_bounced:
            out.append(f'<span class="badge failed" title="{_e(order.customer_email)}">{self.t_bounced}</span>')
        if order.last_send_failed:
            out.append(f'<span class="badge failed">{self.t_send_failed}</span>')
        if order.outcome_unknown:
            out.append(f'<span class="badge unknown">{self.t_unknown}</span>')
        elif order.in_flight:
            out.append(f'<span class="badge in-flight">{self.t_in_flight}</span>')
        return "".join(f"          {badge}\n" for badge in out)


def rows_html(orders: Iterable[Order], *, checked_ids: set[int]) -> SafeString:
    renderer = RowRenderer(checked_ids=checked_ids)
    return mark_safe("\n      ".join(renderer.row(order) for order in orders))  # noqa: S308 - escaped above


def header_cells(headers: Iterable[dict[str, Any]], data: QueryDict) -> SafeString:
    """The sortable column headers (`views.overview._sort_headers`) as the header loop of
    open_payments.html wrote them, each link the current query with its sort (`query_with o=`)."""
    cells = []
    for h in headers:
        direction = h["direction"]
        sort = f" sorted {_e(direction)}" if direction else ""
        aria = f'aria-sort="{"ascending" if direction == "asc" else "descending"}"' if direction else ""
        label = _e(h["label"])
        if h["param"]:
            title = f' title="{_e(h["title"])}"' if h["title"] else ""
            label = f'<a href="{_e(query_string_with(data, o=h["next"]))}"{title}>{label}</a>'
        cells.append(f'\n          <th class="{_e(h["css"])}{sort}" {aria}>\n            {label}\n'
                     '          </th>\n        ')
    return mark_safe("".join(cells))  # noqa: S308 - escaped above
