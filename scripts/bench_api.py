#!/usr/bin/env python
"""The API at scale: bulk upserts (orders/s) and reading one order (latency), through gunicorn over
HTTP/1.1 like a shop's client would. Runs on its own database (`<DATABASE_URL name>_api_bench`,
PostgreSQL only) and writes docs/benchmarks-api.md.

    DATABASE_URL=postgres://... python scripts/bench_api.py [--requests 50] [--reads 300] [--workers 2]
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def bench_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit("DATABASE_URL must point at PostgreSQL")
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{parts.path.lstrip('/') or 'postgres'}_api_bench"))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=50, help="bulk requests of 1,000 new orders")
    parser.add_argument("--reads", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=2, help="concurrent clients for the bulk requests")
    parser.add_argument("--fill", type=int, default=1_000_000,
                        help="top the orders up to this many first (one INSERT ... SELECT generate_series)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks-api.md"))
    args = parser.parse_args()
    url = bench_url()
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings", "DJANGO_DEBUG": "false",
           "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY", "bench-" + "x" * 50),
           "API_RATE_LIMIT": "100000/s", "DATABASE_CONN_MAX_AGE": "600", "DJANGO_SECURE_COOKIES": "false"}
    os.environ.update(env)
    import django
    import psycopg

    admin = urlsplit(url)
    with psycopg.connect(urlunsplit(admin._replace(path="/postgres")), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [admin.path.lstrip("/")]).fetchone():
            conn.execute(f'CREATE DATABASE "{admin.path.lstrip("/")}"')
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from accounts.models import SalesAccount
    from accounts.services import api_key_create
    from dunning.models import DunningConfig
    from orders.models import Order, PaymentMethod

    account, _ = SalesAccount.objects.get_or_create(name="Bench", defaults={"sender_email": "bench@example.com"})
    method, _ = PaymentMethod.objects.get_or_create(code="invoice",
                                                    defaults={"name": "Invoice", "payment_term_days": 14})
    DunningConfig.objects.get_or_create(sales_account=account, payment_method=method,
                                        defaults={"level_1_days": 7, "level_2_days": 14, "level_3_days": 21})
    _row, key = api_key_create(sales_account=account, name="bench")
    missing = args.fill - Order.objects.count()
    if missing > 0:
        from django.db import connection as db

        with db.cursor() as cursor:  # 10 % open, the rest paid, spread over 2025-2026
            cursor.execute(
                f"INSERT INTO {Order._meta.db_table} (sales_account_id, payment_method_id, number, customer_name, "  # noqa: S608
                "customer_email, language, total, currency, ordered_at, paid_at, dunning_blocked, "
                "dunning_block_reason, reminders_sent, customer_is_business, updated_at) "
                "SELECT %s, %s, 'F' || g || '-' || %s, 'Customer', 'c@example.com', '', 25.00, 'EUR', "
                "timestamptz '2025-01-01' + (g %% 700) * interval '1 day', "
                "CASE WHEN g %% 10 = 0 THEN NULL ELSE timestamptz '2026-11-01' END, false, '', 0, false, now() "
                "FROM generate_series(1, %s) AS g", [account.id, method.id, int(time.time()), missing])
            cursor.execute(f"VACUUM ANALYZE {Order._meta.db_table}")
    start_count = Order.objects.count()

    server = subprocess.Popen(  # noqa: S603 - our own interpreter and fixed arguments
        [sys.executable, "-m", "gunicorn", "config.wsgi", "-w", str(args.workers), "-b", f"127.0.0.1:{args.port}",
         "--log-level", "warning"], cwd=ROOT, env=env)
    try:
        for _ in range(100):
            try:
                http.client.HTTPConnection("127.0.0.1", args.port, timeout=1).request("GET", "/api/v1/schema/")
                break
            except OSError:
                time.sleep(0.2)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=120)

        def call(method: str, path: str, body: bytes | None = None) -> tuple[int, bytes, float]:
            nonlocal conn
            t = time.perf_counter()
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=120)  # gunicorn sync closes
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
            data = response.read()
            return response.status, data, time.perf_counter() - t

        run = int(time.time())
        base = datetime.date(2026, 6, 1)

        def batch(i: int, total: str) -> bytes:
            return json.dumps({"orders": [{
                "number": f"B{run}-{i}-{j}", "payment_method": "invoice", "customer_name": f"Customer {j}",
                "customer_email": f"c{j}@example.com", "total": total, "currency": "EUR",
                "ordered_at": (base + datetime.timedelta(days=j % 150)).isoformat()} for j in range(1000)]}).encode()

        def client(bodies: list[bytes]) -> list[float]:
            own = http.client.HTTPConnection("127.0.0.1", args.port, timeout=120)
            times = []
            for body in bodies:
                t = time.perf_counter()
                try:
                    own.request("POST", "/api/v1/orders/bulk", body=body, headers=headers)
                    response = own.getresponse()
                except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                    own = http.client.HTTPConnection("127.0.0.1", args.port, timeout=120)
                    own.request("POST", "/api/v1/orders/bulk", body=body, headers=headers)
                    response = own.getresponse()
                data = response.read()
                assert response.status == 200, data[:300]
                times.append(time.perf_counter() - t)
            return times

        call("POST", "/api/v1/orders/bulk", batch(-1, "10.00"))  # warm-up: imports, connections
        results = {}
        for label, total in (("create", "10.00"), ("update", "11.00")):
            bodies = [batch(i, total) for i in range(args.requests)]
            started = time.perf_counter()
            with ThreadPoolExecutor(args.clients) as pool:
                times = [t for part in pool.map(client, [bodies[k::args.clients] for k in range(args.clients)])
                         for t in part]
            wall = time.perf_counter() - started
            results[label] = {"orders_per_s": 1000 * len(times) / wall,
                              "median_ms": statistics.median(times) * 1000, "max_ms": max(times) * 1000}
        total_orders = Order.objects.count()
        numbers = list(Order.objects.filter(sales_account=account).order_by("?")
                       .values_list("number", flat=True)[:args.reads])
        read_times = []
        load_before = os.getloadavg()
        for number in numbers:
            status, data, seconds = call("GET", f"/api/v1/orders/{number}")
            assert status == 200, data[:300]
            read_times.append(seconds * 1000)
        read_times.sort()
        load_after = os.getloadavg()
    finally:
        server.terminate()
        server.wait(10)
    from django.db import connection

    version = connection.cursor().connection.info.server_version
    lines = [
        "# API benchmarks", "",
        f"Measured {datetime.date.today()} by `python scripts/bench_api.py --requests {args.requests} --reads "
        f"{args.reads} --workers {args.workers} --clients {args.clients}` on {os.cpu_count()} cores, "
        f"PostgreSQL {version // 10000}, Python {platform.python_version()}, gunicorn with {args.workers} sync "
        f"workers on 127.0.0.1; {args.clients} clients send the bulk requests concurrently (orders/s = orders / "
        "wall time), one client the reads. The machine is shared: treat figures as ±20 %.", "",
        f"Orders in the database: {start_count:,} before, {total_orders:,} after.", "",
        "## Bulk upsert (`POST /api/v1/orders/bulk`, 1,000 orders per request)", "",
        "| what | orders/s | median request | slowest request | requests |", "|---|---:|---:|---:|---:|",
    ]
    for label, r in results.items():
        what = "1,000 new orders" if label == "create" else "1,000 changed orders (total)"
        lines.append(f"| {what} | {r['orders_per_s']:,.0f} | {r['median_ms']:.0f} ms | {r['max_ms']:.0f} ms | "
                     f"{args.requests} |")
    lines += ["", "## Reading one order (`GET /api/v1/orders/{number}`, with level and reminders)", "",
              f"Load average (1 / 5 / 15 min) {' / '.join(f'{x:.1f}' for x in load_before)} before the reads, "
              f"{' / '.join(f'{x:.1f}' for x in load_after)} after (the machine has {os.cpu_count()} cores).", "",
              "| median | p95 | requests |", "|---:|---:|---:|",
              f"| {statistics.median(read_times):.1f} ms | {read_times[int(len(read_times) * 0.95) - 1]:.1f} ms | "
              f"{len(read_times)} |", ""]
    Path(args.output).write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
