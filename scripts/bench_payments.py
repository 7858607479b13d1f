#!/usr/bin/env python
"""`make bench-payments`: import a camt.053 with E credit entries against O orders (PostgreSQL),
timing parse + match + write, counting queries per batch and watching peak memory.

Runs on its own database next to the configured one (`<name>_paybench`), never on real data.

    DATABASE_URL=postgres://... python scripts/bench_payments.py [--orders 1000000] [--entries 100000]
        [--reuse] [--profile FILE] [--output docs/benchmarks-payments.md]

Appends a section to docs/benchmarks-payments.md: the load average before and after (the machine is
shared), the import's time, parsing alone, and per stage the SQL statements and their time as the
client saw them (the rest is Python: parsing, matching, building rows).
"""

from __future__ import annotations

import argparse
import datetime
import os
import resource
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def bench_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit("set DATABASE_URL=postgres://...: the payments benchmark runs on PostgreSQL")
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{parts.path.lstrip('/') or 'postgres'}_paybench"))


def ensure_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        name = parts.path.lstrip("/")
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')


def write_camt(path: Path, entries: int, orders: int) -> None:
    """A day's statement: every 10th credit names no order, every 20th is a partial payment."""
    ns = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"
    with path.open("w", encoding="utf-8") as f:
        f.write(f'<?xml version="1.0" encoding="UTF-8"?>\n<Document xmlns="{ns}"><BkToCstmrStmt>'
                "<GrpHdr><MsgId>BENCH</MsgId><CreDtTm>2026-11-25T06:00:00</CreDtTm></GrpHdr><Stmt><Id>BENCH</Id>"
                "<FrToDt><FrDtTm>2026-11-24T00:00:00</FrDtTm><ToDtTm>2026-11-24T23:59:59</ToDtTm></FrToDt>"
                "<Acct><Id><IBAN>DE89370400440532013000</IBAN></Id></Acct>\n")
        step = max(orders // entries, 1)
        for i in range(entries):
            number = f"B{(i * step) % orders + 1:07d}"
            text = f"Kunde {i} Zahlung" if i % 10 == 0 else f"Bestellung {number} vielen Dank"
            amount = "20.00" if i % 20 == 1 else "49.90"
            f.write(f'<Ntry><Amt Ccy="EUR">{amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>'
                    f"<BookgDt><Dt>2026-11-24</Dt></BookgDt><ValDt><Dt>2026-11-24</Dt></ValDt>"
                    f"<AcctSvcrRef>BENCH{i:08d}</AcctSvcrRef><NtryDtls><TxDtls><Refs><EndToEndId>NOTPROVIDED"
                    f"</EndToEndId></Refs><RltdPties><Dbtr><Pty><Nm>Kunde {i}</Nm></Pty></Dbtr></RltdPties>"
                    f"<RmtInf><Ustrd>{text}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>\n")
        f.write("</Stmt></BkToCstmrStmt></Document>\n")


def load_orders(n: int) -> None:
    from django.db import connection

    from accounts.models import SalesAccount
    from orders.models import PaymentMethod

    account = SalesAccount.objects.create(name="Bench", sender_email="shop@example.com")
    method = PaymentMethod.objects.create(code="invoice", name="Rechnung", payment_term_days=14)
    with connection.cursor() as cur, cur.connection.cursor().copy(
            "COPY orders_order (sales_account_id, payment_method_id, number, customer_name, customer_email, language,"
            " total, currency, ordered_at, dunning_blocked, dunning_block_reason, reminders_sent, customer_is_business,"
            " updated_at) FROM STDIN") as copy:
        for i in range(1, n + 1):
            copy.write_row((account.pk, method.pk, f"B{i:07d}", f"Kunde {i}", "", "", "49.90", "EUR",
                            "2026-10-01 12:00:00+00", False, "", 0, False, "2026-10-01 12:00:00+00"))
    with connection.cursor() as cur:
        cur.execute("ANALYZE orders_order")


def reset_orders(url: str, n: int) -> bool:
    """--reuse: keep the orders of an earlier run when there are exactly `n`; drop what the import
    wrote (payments, statements, audit rows, webhook events) and reopen the orders it paid."""
    from django.db import connection

    from orders.models import Order

    try:
        if Order.objects.count() != n:
            return False
    except Exception:  # noqa: BLE001 - no tables yet
        return False
    with connection.cursor() as cur:
        wrote = ["payments_paymentevent", "payments_payment", "payments_bankstatement", "orders_orderevent",
                 "webhooks_webhookdelivery", "webhooks_webhookevent"]
        tables = set(connection.introspection.table_names(cur))
        cur.execute(f"TRUNCATE {', '.join(t for t in wrote if t in tables)}")
        cur.execute("UPDATE orders_order SET paid_at = NULL WHERE paid_at IS NOT NULL")
        cur.execute("VACUUM ANALYZE orders_order")
    return True


# SQL statements by stage: (stage, test on the statement's text)
STAGES = [
    ("existing source ids", lambda sql: sql.startswith("SELECT") and '"source_id" IN' in sql),
    ("order-number lookup", lambda sql: sql.startswith("SELECT") and 'UPPER("orders_order"."number")' in sql
     and "FOR UPDATE" in sql),
    ("orders named (webhook)", lambda sql: sql.startswith("SELECT") and 'UPPER("orders_order"."number")' in sql),
    ("insert payments", lambda sql: sql.startswith(("INSERT INTO \"payments_payment\"", "COPY \"payments_payment\"",
                                                    "SELECT nextval"))),
    ("insert audit rows", lambda sql: sql.startswith(("INSERT INTO \"orders_orderevent\"",
                                                      "COPY \"orders_orderevent\""))),
    ("settle: read payments", lambda sql: sql.startswith("SELECT") and 'FROM "payments_payment"' in sql),
    ("settle: mark paid", lambda sql: sql.startswith("UPDATE \"orders_order\"")
     or (sql.startswith("SELECT") and 'FROM "orders_order"' in sql)),
    ("other", lambda sql: True),
]


def stage_of(sql: str) -> str:
    return next(name for name, test in STAGES if test(sql))


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks-payments.md"),
                        help="append the result as a Markdown section to this file ('' for none)")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the bench database's orders when it has --orders of them (faster reruns)")
    parser.add_argument("--profile", default="", help="write a cProfile of the import to this file")
    args = parser.parse_args()

    url = bench_url()
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["DJANGO_DEBUG"] = "false"  # no query log
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-" + "k" * 40)
    import django

    if not args.reuse:
        ensure_database(url)
    try:
        django.setup()
        from django.db import connection
        connection.ensure_connection()
    except Exception:  # noqa: BLE001 - --reuse without a database yet
        ensure_database(url)
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from payments import parsing, services
    from payments.models import Payment

    call_command("migrate", verbosity=0)
    t0 = time.monotonic()
    reused = args.reuse and reset_orders(url, args.orders)
    if args.reuse and not reused:  # another size or a broken earlier run: start afresh
        connection.close()
        ensure_database(url)
        call_command("migrate", verbosity=0)
        t0 = time.monotonic()
    if not reused:
        load_orders(args.orders)
    load_s = time.monotonic() - t0
    path = ROOT / "var" / f"bench_camt053_{args.entries}.xml"
    path.parent.mkdir(exist_ok=True)
    write_camt(path, args.entries, args.orders)

    # parsing alone (no database): the import reads the file twice (validate, then write)
    load_before = load()
    t0 = time.monotonic()
    for source in parsing.sources_of(path.name, lambda: open(path, "rb")):  # noqa: SIM115
        for _entry in source.entries():
            pass
    parse_s = time.monotonic() - t0

    queries: Counter[str] = Counter()
    sql_time: Counter[str] = Counter()

    def count(execute, sql, params, many, context):
        stage = stage_of(sql.lstrip())
        t = time.monotonic()
        try:
            return execute(sql, params, many, context)
        finally:
            sql_time[stage] += time.monotonic() - t
            queries[stage] += 1

    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.monotonic()
    with connection.execute_wrapper(count):
        if profiler:
            profiler.enable()
        result = services.statements_import([str(path)], now=timezone.now())
        if profiler:
            profiler.disable()
    elapsed = time.monotonic() - t0
    load_after = load()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if profiler:
        profiler.dump_stats(args.profile)
    batches = -(-args.entries // services.BATCH)
    paid = Payment.objects.filter(order__paid_at__isnull=False).count()
    total_q = sum(queries.values())
    sql_s = sum(sql_time.values())
    rows = [f"| {name} | {queries[name]} | {sql_time[name]:.1f} s |" for name, _test in STAGES if queries[name]]
    lines = [
        f"### {args.entries:,} entries against {args.orders:,} orders "
        f"({datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"- load average (1/5/15 min) {load_before} before, {load_after} after; PostgreSQL "
        f"{connection.pg_version // 10000}; {path.stat().st_size / 1e6:.1f} MB of XML; orders "
        f"{'reused' if reused else f'loaded in {load_s:.1f} s (COPY)'}.",
        f"- `{result.line()}`; {paid:,} payments on orders now paid.",
        f"- **import (parse + match + write, one transaction): {elapsed:.1f} s** "
        f"({args.entries / elapsed:,.0f} entries/s). Parsing alone, no database: {parse_s:.1f} s.",
        f"- {total_q} queries for {batches} batches of {services.BATCH} ({total_q / batches:.1f} per batch); "
        f"peak RSS {rss_before / 1024:.0f} MB before, {rss_after / 1024:.0f} MB after.",
        "",
        "| Stage (SQL round trips, timed at the client) | Queries | Time |",
        "|---|---:|---:|",
        *rows,
        f"| Python (parsing, matching, building rows) | | {elapsed - sql_s:.1f} s |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.output:
        with open(args.output, "a", encoding="utf-8") as f:
            f.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
