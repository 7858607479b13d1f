#!/usr/bin/env python
"""`make bench-payments`: import a camt.053 with E credit entries against O orders (PostgreSQL),
timing parse + match + write, counting queries per batch and watching peak memory.

Runs on its own database next to the configured one (`<name>_paybench`), never on real data.

    DATABASE_URL=postgres://... python scripts/bench_payments.py [--orders 1000000] [--entries 100000]
"""

from __future__ import annotations

import argparse
import datetime
import os
import resource
import sys
import time
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
            " total, currency, ordered_at, dunning_blocked, dunning_block_reason, reminders_sent) FROM STDIN") as copy:
        for i in range(1, n + 1):
            copy.write_row((account.pk, method.pk, f"B{i:07d}", f"Kunde {i}", "", "", "49.90", "EUR",
                            "2026-10-01 12:00:00+00", False, "", 0))
    with connection.cursor() as cur:
        cur.execute("ANALYZE orders_order")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--output", default="", help="append the result as a Markdown section to this file")
    args = parser.parse_args()

    url = bench_url()
    ensure_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["DJANGO_DEBUG"] = "false"  # no query log
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-" + "k" * 40)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from payments import services
    from payments.models import Payment

    call_command("migrate", verbosity=0)
    t0 = time.monotonic()
    load_orders(args.orders)
    load_s = time.monotonic() - t0
    path = ROOT / "var" / f"bench_camt053_{args.entries}.xml"
    path.parent.mkdir(exist_ok=True)
    write_camt(path, args.entries, args.orders)

    queries = [0]

    def count(execute, sql, params, many, context):
        queries[0] += 1
        return execute(sql, params, many, context)

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.monotonic()
    with connection.execute_wrapper(count):
        result = services.statements_import([str(path)], now=timezone.now())
    elapsed = time.monotonic() - t0
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    batches = -(-args.entries // services.BATCH)
    paid = Payment.objects.filter(order__paid_at__isnull=False).count()
    lines = [
        f"## Payments in: camt.053 import ({datetime.date.today().isoformat()})",
        "",
        f"- {args.entries:,} credit entries ({path.stat().st_size / 1e6:.1f} MB of XML) against {args.orders:,} "
        f"orders on PostgreSQL {connection.pg_version // 10000}; orders loaded in {load_s:.1f} s (COPY).",
        f"- `{result.line()}`",
        f"- parse + validate + match + write in one transaction: **{elapsed:.1f} s** "
        f"({args.entries / elapsed:,.0f} entries/s); {paid:,} payments on orders now paid.",
        f"- {queries[0]} queries for {batches} batches of {services.BATCH}: "
        f"{queries[0] / batches:.1f} per batch (constant: a batch costs the same at any order count).",
        f"- peak RSS {rss_before / 1024:.0f} MB before, {rss_after / 1024:.0f} MB after (the XML is streamed).",
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
