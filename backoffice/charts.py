"""Geometry of the dashboard's charts, drawn server-side as inline SVG (no JavaScript, no style
attributes: the CSP forbids inline styles; colours come from classes in backoffice.css). The
template draws what these return; the figures themselves come from dunning.reporting."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from decimal import Decimal

BAR_WIDTH = 300  # the longest bar, in SVG units
BAR_HEIGHT = 20
BAR_GAP = 8
LABEL_WIDTH = 170


@dataclass
class Bar:
    label: str
    count: int
    amount: Decimal
    href: str
    css: str = ""
    x: int = LABEL_WIDTH
    y: int = 0
    width: float = 0
    text_y: int = 0
    value_x: float = 0


@dataclass
class BarChart:
    bars: list[Bar]
    width: int = LABEL_WIDTH + BAR_WIDTH + 130
    height: int = 0


def bar_chart(bars: list[Bar]) -> BarChart:
    """Horizontal bars of the amounts, the longest BAR_WIDTH wide (a bar of a non-zero amount at
    least 1 unit, so it shows)."""
    top = max((bar.amount for bar in bars), default=Decimal(0))
    for i, bar in enumerate(bars):
        bar.y = i * (BAR_HEIGHT + BAR_GAP)
        bar.text_y = bar.y + BAR_HEIGHT - 6
        bar.width = round(float(bar.amount / top) * BAR_WIDTH, 1) if top else 0
        if bar.amount and bar.width < 1:
            bar.width = 1
        bar.value_x = bar.x + bar.width + 6
    return BarChart(bars=bars, height=max(len(bars) * (BAR_HEIGHT + BAR_GAP) - BAR_GAP, 0))


LINE_WIDTH = 540
LINE_HEIGHT = 120
LINE_LEFT = 8
LINE_TOP = 8


@dataclass
class LineChart:
    segments: list[str]  # "x,y x,y ..." of each run of days with figures (a missing day breaks the line)
    top: Decimal | None
    first_day: datetime.date
    last_day: datetime.date
    width: int = LINE_WIDTH + 2 * LINE_LEFT
    height: int = LINE_HEIGHT + 2 * LINE_TOP
    baseline: int = LINE_TOP + LINE_HEIGHT
    right: int = LINE_LEFT + LINE_WIDTH
    dots: list[tuple[float, float]] = field(default_factory=list)  # days alone between gaps


def line_chart(days: list[datetime.date], values: list[Decimal | None], *, top: Decimal | None = None) -> LineChart:
    """A line over `days` of `values` (None: no figure that day), scaled to `top` (default: the
    largest value)."""
    known = [v for v in values if v is not None]
    if top is None:
        top = max(known, default=None)
    step = LINE_WIDTH / max(len(days) - 1, 1)
    runs: list[list[tuple[float, float]]] = [[]]
    for i, value in enumerate(values):
        if value is None:
            runs.append([])
            continue
        x = round(LINE_LEFT + i * step, 1)
        y = round(LINE_TOP + LINE_HEIGHT - (float(value / top) * LINE_HEIGHT if top else 0), 1)
        runs[-1].append((x, y))
    return LineChart(segments=[" ".join(f"{x},{y}" for x, y in run) for run in runs if len(run) > 1],
                     dots=[run[0] for run in runs if len(run) == 1], top=top, first_day=days[0],
                     last_day=days[-1])
