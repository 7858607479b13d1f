"""Time and memory of the overview export (docs/benchmarks.md "export"): N open orders, the CSV and
the xlsx as the view writes them (backoffice.export with the overview's queryset), each in a forked
child whose peak RSS growth is reported. Constant growth across N shows that rows are streamed
(server-side cursor, chunks), not loaded.

    DATABASE_URL=postgres://... .venv/bin/python scripts/bench_export.py [--sizes 50000,300000] [--xlsx-max 100000]

Uses its own database (<name>_export, created when missing) and keeps the orders between runs.
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import sys
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench import ensure_postgres_database, in_child  # noqa: E402


def export_database_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit("bench_export needs DATABASE_URL=postgres://...")
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{parts.path.lstrip('/') or 'postgres'}_export"))


def ensure_open_orders(n: int) -> float:
    """At least n open orders (all in one account and config); seconds spent adding them."""
    from django.db import connection

    from accounts.models import SalesAccount
    from dunning.models import DunningConfig
    from orders.models import Order, PaymentMethod

    account, _ = SalesAccount.objects.get_or_create(name="Export", defaults={
        "channel": "webshop", "sender_email": "billing@export.example", "team_email": "team@export.example"})
    method, _ = PaymentMethod.objects.get_or_create(code="invoice", defaults={"name": "Rechnung",
                                                                              "payment_term_days": 14})
    DunningConfig.objects.get_or_create(sales_account=account, payment_method=method, defaults={"is_active": True})
    existing = Order.objects.count()
    if existing >= n:
        return 0.0
    start = time.perf_counter()
    rng = random.Random(existing)
    now = datetime.datetime.now(datetime.UTC)
    columns = ["sales_account_id", "payment_method_id", "number", "customer_name", "customer_email", "language",
               "total", "currency", "ordered_at", "dunning_blocked", "dunning_block_reason", "reminders_sent",
               "last_reminder_at", "customer_is_business", "updated_at"]
    with connection.cursor() as cursor, cursor.cursor.copy(
            f"COPY {Order._meta.db_table} ({', '.join(columns)}) FROM STDIN") as copy:
        for i in range(existing, n):
            sent = rng.choice([0, 0, 1, 2, 3])
            name = f"=Kunde {i}" if i % 1000 == 0 else f"Kunde {i}"  # some cells to escape
            copy.write_row((account.id, method.id, f"E{i:08d}", name, f"kunde{i}@example.com", "",
                            Decimal(rng.randrange(500, 500000)) / 100, "EUR",
                            now - datetime.timedelta(minutes=rng.randrange(365 * 24 * 60)), False, "", sent,
                            now - datetime.timedelta(days=3) if sent else None, False, now))
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Order._meta.db_table}")
    return time.perf_counter() - start


def run_export(kind: str, limit: int) -> dict:
    from django.utils import timezone

    from backoffice import export
    from backoffice.filters import OpenOrderFilter
    from backoffice.selectors import open_orders
    from common.dates import local_today
    from dunning.selectors import active_configs
    from orders.models import Order

    now = timezone.now()
    configs = active_configs()
    filterset = OpenOrderFilter({}, queryset=open_orders(now=now, configs=configs), now=now, configs=configs)
    ids = Order.objects.order_by("id").values_list("id", flat=True)
    last_id = ids[limit - 1]
    queryset = filterset.qs.filter(id__lte=last_id)
    fmt = export.ExportFormat(german=True)
    start = time.perf_counter()
    size = 0
    if kind == "csv":
        for chunk in export.csv_chunks(queryset, today=local_today(now), fmt=fmt):
            size += len(chunk)
    else:
        handle = export.xlsx_file(queryset, today=local_today(now), fmt=fmt, title="Offene Zahlungen")
        size = os.fstat(handle.fileno()).st_size
        handle.close()
    return {"rows": limit, "seconds": time.perf_counter() - start, "bytes": size}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="50000,300000")
    parser.add_argument("--xlsx-max", type=int, default=100_000, help="largest size also exported as xlsx")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    url = export_database_url()
    ensure_postgres_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DJANGO_DEBUG", "false")
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-export-not-secret")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    added = ensure_open_orders(max(sizes))
    print(f"orders ready ({added:.1f} s spent adding); load average {os.getloadavg()[0]:.2f}")
    for n in sizes:
        for kind in ("csv", "xlsx"):
            if kind == "xlsx" and n > args.xlsx_max:
                continue
            result, growth = in_child(run_export, kind, n)
            print(f"{kind:4} {n:>9,} rows: {result['seconds']:7.1f} s, {result['rows'] / result['seconds']:8,.0f} "
                  f"rows/s, {result['bytes'] / 1e6:7.1f} MB, peak RSS growth {growth:6.1f} MiB")


if __name__ == "__main__":
    main()
