"""The receivables dashboard (docs/rules/dashboard.md): the open orders by age bucket and dunning
level per currency and sales account (live), days sales outstanding and the 90-day trend (as of
the last snapshot), and each reminder's effect over a chosen period (as of the last snapshot).
Every figure of the open orders links to the overview filtered to exactly those orders."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import pgettext

from common.dates import local_today
from dunning.models import DunningLevel
from dunning.reporting import (
    TREND_DAYS,
    AgeBucket,
    AgingRow,
    Cell,
    Effect,
    days_sales_outstanding,
    receivables_aging,
    receivables_trend,
    reminder_effectiveness,
)
from dunning.selectors import active_configs
from orders.models import payment_terms

from ..charts import Bar, bar_chart, line_chart
from ..filters import REMINDER_FILTERS
from ..forms import PeriodForm
from ..permissions import back_office_required

DEFAULT_PERIOD_DAYS = 90


def overview_url(**params: Any) -> str:
    """The open-payments overview filtered by `params` (None values left out)."""
    query = QueryDict(mutable=True)
    for name in ("dunning_level", "sales_account", "flagged", "currency", "age", "state", *REMINDER_FILTERS):
        if params.get(name) is not None:
            query[name] = str(params[name])
    return reverse("backoffice:open_payments") + "?" + query.urlencode()


@dataclass
class Figure:
    """A count and an amount with the overview link to exactly its orders."""

    label: str
    cell: Cell
    href: str


@dataclass
class AgingTable:
    name: str
    total: Figure
    buckets: list[Figure]
    levels: list[Figure]
    flagged: Figure


def _aging_table(row: AgingRow, name: str) -> AgingTable:
    base = {"currency": row.currency, "sales_account": row.account_id}
    return AgingTable(
        name=name,
        total=Figure("", row.total, overview_url(**base)),
        buckets=[Figure(b.label, row.buckets[b], overview_url(**base, age=b.value)) for b in AgeBucket.buckets()],
        levels=[Figure(lvl.label, row.levels[lvl], overview_url(**base, dunning_level=lvl.param))
                for lvl in DunningLevel],
        flagged=Figure("", row.flagged, overview_url(**base, flagged="true")),
    )


@dataclass
class CurrencyPanel:
    currency: str
    all: AgingTable | None = None
    accounts: list[AgingTable] = field(default_factory=list)
    bucket_chart: Any = None
    level_chart: Any = None
    dso: Any = None
    trend: Any = None
    open_chart: Any = None
    share_chart: Any = None
    # today's trend row links to the overview (live); past days link to no list
    today_open: str = ""
    today_overdue: str = ""


def _bars(figures: list[Figure], prefix: str) -> Any:
    return bar_chart([Bar(label=str(f.label), count=f.cell.count, amount=f.cell.amount, href=f.href,
                          css=f"{prefix}-{i}") for i, f in enumerate(figures)])


@dataclass
class EffectRow:
    """One level's (or template's) reminder effect with the overview links to its orders: those
    reminded (`sent`), those whose payment counts for the reminder (`paid`: the recovered amount)
    and those paid within 7 and 14 days (`dunning.reporting.reminded_orders_q`)."""

    effect: Effect
    sent: str
    paid: str
    paid_7: str
    paid_14: str


def _effect_rows(effects: list[Effect], *, start: datetime.date, end: datetime.date,
                 by_template: bool) -> list[EffectRow]:
    rows = []
    for e in effects:
        base: dict[str, Any] = {"state": "all", "reminded_level": e.level, "reminded_from": start.isoformat(),
                                "reminded_to": end.isoformat()}
        if by_template:
            base["template"] = e.template_id if e.template_id is not None else "none"
        rows.append(EffectRow(effect=e, sent=overview_url(**base), paid=overview_url(**base, paid_within="any"),
                              paid_7=overview_url(**base, paid_within=7),
                              paid_14=overview_url(**base, paid_within=14)))
    return rows


@back_office_required
def dashboard(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    today = local_today(now)
    configs = active_configs()
    aging = receivables_aging(now=now, configs=configs, terms=payment_terms())
    trend = receivables_trend(today=today)
    currencies = sorted(set(aging.currencies) | set(trend.by_currency))
    panels = []
    for currency in currencies:
        panel = CurrencyPanel(currency=currency)
        total = aging.currencies.get(currency) or AgingRow(currency=currency)
        panel.all = _aging_table(total, "")
        panel.accounts = [_aging_table(row, row.account_name) for row in aging.accounts.get(currency, [])]
        panel.bucket_chart = _bars(panel.all.buckets, "age")
        panel.level_chart = _bars(panel.all.levels, "level")
        points = trend.by_currency.get(currency, [])
        panel.dso = days_sales_outstanding(total.total.amount, sales=trend.sales.get(currency, 0),
                                           days=trend.covered_days)
        if points:
            panel.trend = points
            panel.today_open = overview_url(currency=currency)
            panel.today_overdue = overview_url(currency=currency, age=AgeBucket.OVERDUE.value)
            panel.open_chart = line_chart(trend.days, [p.open_amount for p in points])
            panel.share_chart = line_chart(trend.days, [p.overdue_share for p in points], top=100)
        panels.append(panel)

    data = request.GET if "start" in request.GET or "end" in request.GET else None
    initial = {"start": today - datetime.timedelta(days=DEFAULT_PERIOD_DAYS - 1), "end": today}
    form = PeriodForm(data, initial=initial)
    effectiveness = None
    effect_rows: dict[str, list[EffectRow]] = {}
    period = (initial["start"], initial["end"]) if data is None else None
    if data is not None and form.is_valid():
        period = (form.cleaned_data["start"], form.cleaned_data["end"])
    if period is not None:
        effectiveness = reminder_effectiveness(start=period[0], end=period[1], today=today)
        effect_rows = {
            "by_level": _effect_rows(effectiveness.by_level, start=period[0], end=period[1], by_template=False),
            "by_template": _effect_rows(effectiveness.by_template, start=period[0], end=period[1],
                                        by_template=True),
        }
    return render(request, "backoffice/dashboard.html", {
        "panels": panels,
        "now": now,
        "today": today,
        "trend": trend,
        "trend_days": TREND_DAYS,
        "form": form,
        "effectiveness": effectiveness,
        "effect_rows": effect_rows,
        # the account table's short column heads, under "Days overdue" and "Dunning level"
        "bucket_heads": [pgettext("days overdue", "not due"), "1-30", "31-60", "61-90", "> 90"],
        "level_heads": ["1", "2", "3", pgettext("dunning level", "completed")],
    })
