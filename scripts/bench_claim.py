"""Time `claim_compute` (docs/benchmarks-claim.md): µs per call over 10,000 calls of the typical
cases, and with the formatting a reminder does (each figure as money in German, as the `claim.*` placeholders).

    .venv/bin/python scripts/bench_claim.py [--profile]
"""

from __future__ import annotations

import cProfile
import datetime
import os
import pstats
import sys
import timeit
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")

import django  # noqa: E402

django.setup()

from common.formats import format_money  # noqa: E402
from dunning.claim import SNAPSHOT_FIELDS, claim_compute  # noqa: E402

RATES = [(datetime.date(2024, 7, 1), Decimal("3.37")), (datetime.date(2025, 1, 1), Decimal("2.27")),
         (datetime.date(2025, 7, 1), Decimal("1.27")), (datetime.date(2026, 1, 1), Decimal("1.27"))]
FEES = {1: Decimal("0"), 2: Decimal("2.50"), 3: Decimal("5.00")}
N = 10_000

CASES = {
    "consumer, level 1, no interest": {
        "total": Decimal("129.90"), "currency": "EUR", "is_business": False, "due_date": datetime.date(2026, 3, 1),
        "first_deadline": datetime.date(2026, 3, 10), "levels_sent": range(1, 2), "fees": FEES,
        "charge_flat_fee_b2b": False,
        "charge_interest": False, "base_rates": RATES, "payments": [], "on": datetime.date(2026, 3, 3)},
    "business, interest over 60 days, one payment": {
        "total": Decimal("4711.00"), "currency": "EUR", "is_business": True, "due_date": datetime.date(2025, 11, 15),
        "first_deadline": datetime.date(2025, 11, 30), "levels_sent": range(1, 3), "fees": FEES,
        "charge_flat_fee_b2b": True,
        "charge_interest": True, "base_rates": RATES, "payments": [(datetime.date(2025, 12, 20), Decimal("1000.00"))],
        "on": datetime.date(2026, 1, 14)},
}


def formatted(kwargs) -> list[str]:
    claim = claim_compute(**kwargs)  # formatted as a reminder's `claim.*` placeholders are
    return [format_money(getattr(claim, name), claim.currency, "de") for name in SNAPSHOT_FIELDS]


def per_call(fn, kwargs_list) -> float:
    """Best of 5 runs over the list, in µs per call."""
    def run() -> None:
        for kw in kwargs_list:
            fn(kw)
    return min(timeit.repeat(run, number=1, repeat=5)) / len(kwargs_list) * 1e6


def main() -> None:
    for name, kwargs in CASES.items():
        same = [kwargs] * N
        # N different totals: the formatting caches (lru_cache of format_money) miss as for real orders
        varied = [{**kwargs, "total": kwargs["total"] + Decimal(i) / 100} for i in range(N)]
        plain = per_call(lambda kw: claim_compute(**kw), same)
        fmt_hit = per_call(formatted, same)
        fmt_miss = per_call(formatted, varied)
        print(f"{name}: {plain:.1f} µs; with formatting {fmt_hit:.1f} µs (same amounts), "
              f"{fmt_miss:.1f} µs (different amounts)")
    if "--profile" in sys.argv:
        kwargs = CASES["business, interest over 60 days, one payment"]
        profiler = cProfile.Profile()
        varied = [{**kwargs, "total": kwargs["total"] + Decimal(i) / 100 + 100} for i in range(N)]
        profiler.runcall(lambda: [formatted(kw) for kw in varied])
        pstats.Stats(profiler).sort_stats("tottime").print_stats(18)


if __name__ == "__main__":
    main()
