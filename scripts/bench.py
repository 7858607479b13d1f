#!/usr/bin/env python
"""`make bench`: the open-payments page and the dunning job at scale, against a naive baseline.

Runs on its own database next to the configured one (PostgreSQL: `<name>_bench`; SQLite:
var/bench.sqlite3), so it never touches real data. Writes docs/benchmarks-overview.md (its own
file, whole) and its sections of docs/benchmarks-sending.md (between marker comments: the rest
of that file is kept). docs/benchmarks.md is the index of all benchmark files.

    python scripts/bench.py [--orders N] [--job-reminders R] [--naive-reminders R] [--repeat K]
                            [--only-overview] [--churn N | --no-vacuum] [--only-sim]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import itertools
import json
import os
import platform
import random
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# --- environment: a bench database, DEBUG off (no query log), a provider that keeps nothing ---------

def bench_database_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        parts = urlsplit(url)
        name = parts.path.lstrip("/") or "postgres"
        return urlunsplit(parts._replace(path=f"/{name}_bench"))
    return f"sqlite:///{ROOT / 'var' / 'bench.sqlite3'}"


def ensure_postgres_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


class NullProvider:
    """Placeholder; the real class is created after Django is set up (it subclasses anymail's)."""


def make_null_provider():
    from anymail.backends.test import EmailBackend

    counter = itertools.count(1)

    class Null(EmailBackend):
        """anymail's test backend without its outbox: the full anymail send path, nothing kept."""

        def post_to_esp(self, payload, message):
            payload.get_params()
            return {"recipient_status": {
                email: __import__("anymail.message", fromlist=["AnymailRecipientStatus"]).AnymailRecipientStatus(
                    message_id=f"bench-{next(counter)}", status="sent") for email in payload.recipient_emails}}

    return Null


# --- data ---------------------------------------------------------------------------------------------

def generate(n_orders: int, now: datetime.datetime, seed: int = 7) -> dict:
    """N orders like a real shop: ~90 % paid, ~10 % open across every level; bulk insert or COPY."""
    from django.db import connection

    from accounts.models import SalesAccount
    from dunning.models import DunningConfig, EmailTemplate, ReminderAssignment
    from orders.models import Order, PaymentMethod

    rng = random.Random(seed)
    accounts = [SalesAccount.objects.get_or_create(name=name, defaults={
        "channel": channel, "sender_email": f"billing@{name.lower()}.example", "team_email": "team@shop.example",
        "language": lang})[0] for name, channel, lang in
        (("Webshop", "webshop", "de"), ("eBay", "ebay", "de"), ("Amazon", "amazon", "en"))]
    methods = [PaymentMethod.objects.get_or_create(code=code, defaults={
        "name": name, "is_prepayment": pre, "payment_term_days": term})[0] for code, name, pre, term in
        (("invoice", "Rechnung", False, 14), ("prepayment", "Vorkasse", True, 0), ("paypal", "PayPal", False, 0))]
    templates = {}
    for level in (1, 2, 3):
        for lang in ("de", "en"):
            templates[(level, lang)] = EmailTemplate.objects.get_or_create(name=f"Level {level}", language=lang,
                                                                           defaults={
                "subject": "Zahlungserinnerung {{ order.number }}" if lang == "de" else "Reminder {{ order.number }}",
                "body": "Hallo {{ customer_name }},\nbitte zahlen Sie {{ order.total }} (fällig seit "
                        "{{ order.due_date }}, {{ order.days_overdue }} Tage).\n{{ payment_instructions }}\n"
                        "{{ sales_account.name }}"})[0]
    for account in accounts:
        for method in methods:
            DunningConfig.objects.get_or_create(sales_account=account, payment_method=method, defaults={
                "is_active": True, "level_1_days": 7, "level_2_days": 14, "level_3_days": 21})
        for level in (1, 2, 3):
            ReminderAssignment.objects.update_or_create(sales_account=account, level=level, defaults={
                "template": templates[(level, "de")], "send_automatically": False})
    existing = Order.objects.exclude(sales_account__name="Bench job").count()
    if existing >= n_orders:
        return {"orders": existing, "generated": 0, "seconds": 0.0}
    start = time.perf_counter()
    columns = ["sales_account_id", "payment_method_id", "number", "customer_name", "customer_email", "language",
               "total", "currency", "ordered_at", "paid_at", "cancelled_at", "dunning_blocked",
               "dunning_block_reason", "reminders_sent", "last_reminder_at", "flagged_for_cancellation_at",
               "reservation_released_at", "customer_is_business", "updated_at", "customer_number", "customer_street",
               "customer_postcode", "customer_city", "customer_country"]

    def rows():
        for i in range(existing, n_orders):
            account = accounts[i % 3]
            method = methods[rng.randrange(3)]
            ordered = now - datetime.timedelta(minutes=rng.randrange(365 * 24 * 60))
            paid = cancelled = last = None
            sent = 0
            r = rng.random()
            if r < 0.88:
                paid = ordered + datetime.timedelta(days=rng.randrange(20))
            elif r < 0.90:
                cancelled = ordered + datetime.timedelta(days=rng.randrange(30))
            else:  # open: a spread over every level
                sent = rng.choice([0, 0, 0, 1, 1, 2, 2, 3])
                if sent:
                    last = max(ordered, now - datetime.timedelta(days=rng.randrange(1, 40)))
            yield (account.id, method.id, f"B{i:08d}", f"Kunde {i}", f"kunde{i}@example.com", "",
                   Decimal(rng.randrange(500, 50000)) / 100, "EUR", ordered, paid, cancelled, rng.random() < 0.01,
                   "", sent, last, None, None, False, paid or cancelled or ordered, "", "", "", "", "")

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor, cursor.cursor.copy(
                f"COPY {Order._meta.db_table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows():
                copy.write_row(row)
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {Order._meta.db_table}")
    else:
        sql = (f"INSERT INTO {Order._meta.db_table} ({', '.join(columns)}) "  # noqa: S608 - our own names
               f"VALUES ({', '.join(['%s'] * len(columns))})")
        from django.db import transaction

        batch: list = []
        with transaction.atomic():
            for row in rows():
                batch.append(row)
                if len(batch) == 5000:
                    with connection.cursor() as cursor:
                        cursor.executemany(sql, batch)
                    batch = []
            if batch:
                with connection.cursor() as cursor:
                    cursor.executemany(sql, batch)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return {"orders": n_orders, "generated": n_orders - existing, "seconds": time.perf_counter() - start}


def prepare_job_orders(n: int, now: datetime.datetime) -> int:
    """A separate account with exactly `n` orders due for level 1; only it sends automatically."""
    from django.db import connection

    from accounts.models import SalesAccount
    from dunning.models import DunningConfig, EmailTemplate, Reminder, ReminderAssignment
    from orders.models import Order, OrderEvent, PaymentMethod

    account, _ = SalesAccount.objects.get_or_create(name="Bench job", defaults={
        "sender_email": "billing@bench.example", "team_email": "team@bench.example"})
    invoice = PaymentMethod.objects.get(code="invoice")
    DunningConfig.objects.get_or_create(sales_account=account, payment_method=invoice, defaults={"is_active": True})
    ReminderAssignment.objects.update_or_create(sales_account=account, level=1, defaults={
        "template": EmailTemplate.objects.get(name="Level 1", language="de"), "send_automatically": True})
    OrderEvent.objects.filter(order__sales_account=account).delete()
    Reminder.objects.filter(order__sales_account=account).delete()
    Order.objects.filter(sales_account=account).delete()
    ordered = now - datetime.timedelta(days=40)
    rows = [Order(sales_account=account, payment_method=invoice, number=f"J{i:08d}", customer_name=f"Kunde {i}",
                  customer_email=f"job{i}@example.com", total=Decimal("49.90"), ordered_at=ordered)
            for i in range(n)]
    Order.objects.bulk_create(rows, batch_size=2000)
    if connection.vendor == "postgresql":
        # What autovacuum does between runs in production (it is off on some test servers): without
        # it every repetition reads the dead rows of the one before.
        with connection.cursor() as cursor:
            for model in (Order, Reminder, OrderEvent):
                cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")
    return account.id


# --- measuring ----------------------------------------------------------------------------------------

def summarize(samples: list[float]) -> dict:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"median_ms": statistics.median(ordered) * 1000, "p95_ms": p95 * 1000, "n": len(ordered)}


def vacuum_orders() -> None:
    """VACUUM ANALYZE the orders on PostgreSQL before measuring the pages, as autovacuum does on a
    production server after a bulk load: it sets the visibility map, without which an index-only
    scan must still visit the table for every row. The bench server may run with autovacuum off,
    and a table that was never vacuumed is the worst case (measure it with --no-vacuum)."""
    from django.db import connection

    from orders.models import Order

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM ANALYZE {Order._meta.db_table}")


def churn_orders(n: int, now: datetime.datetime) -> dict:
    """What a shop writes between two autovacuum runs, without a VACUUM after it: half of `n` open
    orders paid (random ones, so the changed rows are spread over the table as payments are),
    half new open orders. With orders' per-table autovacuum settings (orders migration 0008)
    autovacuum starts after 0.2 % of the rows plus 500 changed (2,500 at a million): about the most
    a table is behind in production (plus what changes while autovacuum sleeps between checks).
    The bench server may run with autovacuum off, so nothing vacuums here in between."""
    from django.db import connection

    from accounts.models import SalesAccount
    from orders.models import Order, PaymentMethod

    table = Order._meta.db_table
    accounts = list(SalesAccount.objects.filter(name__in=["Webshop", "eBay", "Amazon"]).values_list("id", flat=True))
    methods = list(PaymentMethod.objects.filter(code__in=["invoice", "prepayment", "paypal"])
                   .values_list("id", flat=True))
    stamp = int(time.time())
    start = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET paid_at = %s, updated_at = %s WHERE id IN (SELECT id FROM {table} "  # noqa: S608
            "WHERE paid_at IS NULL AND cancelled_at IS NULL AND number LIKE 'B%%' ORDER BY random() LIMIT %s)",
            [now, now, n // 2])
        paid = cursor.rowcount
        cursor.execute(
            f"INSERT INTO {table} (sales_account_id, payment_method_id, number, customer_name, "  # noqa: S608
            "customer_email, language, total, currency, ordered_at, dunning_blocked, dunning_block_reason, "
            "reminders_sent, customer_is_business, updated_at, customer_number, customer_street, customer_postcode, "
            "customer_city, customer_country) "
            "SELECT (%s::bigint[])[1 + g %% %s], (%s::bigint[])[1 + (g / 3) %% %s], 'C' || %s || '-' || g, "
            "'Kunde C' || g, 'c' || g || '@example.com', '', 5 + (g %% 400), 'EUR', "
            "%s - (g %% 60) * interval '1 day', false, '', 0, false, %s, '', '', '', '', '' "
            "FROM generate_series(1, %s) AS g",
            [accounts, len(accounts), methods, len(methods), stamp, now, now, n - n // 2])
        added = cursor.rowcount
    return {"paid": paid, "added": added, "seconds": time.perf_counter() - start}


def measure_pages(repeat: int) -> list[dict]:
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    user, _ = User.objects.get_or_create(username="bench", defaults={"is_staff": True, "is_superuser": True})
    client = Client()
    client.force_login(user)
    results = []
    pages = [("unfiltered", "/orders/open-payments/")]
    pages += [(f"level {lvl}", f"/orders/open-payments/?dunning_level={lvl}") for lvl in ("1", "2", "3", "completed")]
    pages.append(("Notify confirmation, all matching level 1",
                  "/orders/open-payments/notify/?dunning_level=1&select_across=1"))
    for label, url in pages:
        for _ in range(2):
            client.get(url, secure=True)  # warm up (secure: the bench runs with DEBUG off, which redirects http)
        samples, queries, status = [], set(), None
        for _ in range(repeat):
            with CaptureQueriesContext(connection) as ctx:
                start = time.perf_counter()
                response = client.get(url, secure=True)
                samples.append(time.perf_counter() - start)
            status = response.status_code
            queries.add(len(ctx.captured_queries))
        results.append({"page": label, "url": url, "status": status, "queries": sorted(queries),
                        **summarize(samples)})
    return results


def explain_level_queries(now: datetime.datetime) -> list[dict]:
    from dunning import selectors
    from orders.models import Order

    configs = selectors.active_configs()
    out = []
    for level in (1, 2, 3, "completed"):
        qs = Order.objects.filter(selectors.level_q(level, now=now, configs=configs))
        plan_page = qs.order_by("-ordered_at", "-id")[:50].explain()
        plan_count = qs.values("id").explain()
        indexes = sorted({name for name in ("order_open_level_idx", "order_open_sent_date_idx", "order_open_date_idx",
                                            "order_open_flagged_idx")
                          if name in plan_page + plan_count})
        out.append({"level": level, "indexes": indexes, "plan_page": plan_page, "plan_count": plan_count})
    return out


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def in_child(fn, *args):
    """Run fn in a forked child; returns (result, MiB the child's peak RSS grew above its RSS at the
    start). The growth is the job's own memory: the absolute RSS of a fork also counts the pages
    it shares with the parent, which say nothing about the job."""
    from django.db import connections

    connections.close_all()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        try:
            start_kib = _status_kib("VmRSS")
            result = fn(*args)
            growth = (_status_kib("VmHWM") - start_kib) / 1024
            payload = json.dumps({"ok": result, "growth": growth}, default=str)
        except BaseException as exc:  # reported by the parent
            payload = json.dumps({"error": f"{type(exc).__name__}: {exc}"})
        with os.fdopen(write_fd, "w") as f:
            f.write(payload)
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as f:
        payload = json.loads(f.read() or '{"error": "no result"}')
    os.waitpid(pid, 0)
    if "error" in payload:
        raise RuntimeError(payload["error"])
    return payload["ok"], payload["growth"]


def run_job(now_iso: str) -> dict:
    from dunning.services import dunning_run_execute

    now = datetime.datetime.fromisoformat(now_iso)
    start = time.perf_counter()
    run = dunning_run_execute(now=now)
    seconds = time.perf_counter() - start
    return {"sent": run.sent, "failed": run.failed, "seconds": seconds, "error": run.error}


def run_naive(now_iso: str, account_id: int) -> dict:
    """The way not to do it: evaluate the rule in Python per order, and query per order."""
    from django.core.mail import EmailMultiAlternatives
    from django.db import transaction

    from common.dates import local_date
    from dunning.models import DunningConfig, Reminder, ReminderAssignment
    from dunning.selectors import order_claim_on
    from dunning.templating import CompiledTemplate, render_reminder
    from orders.models import Order

    now = datetime.datetime.fromisoformat(now_iso)
    today = local_date(now)
    start = time.perf_counter()
    sent = 0
    for order in Order.objects.filter(sales_account_id=account_id, paid_at=None, cancelled_at=None):
        config = DunningConfig.objects.filter(sales_account_id=order.sales_account_id,
                                              payment_method_id=order.payment_method_id, is_active=True).first()
        if config is None or order.dunning_blocked or order.total < config.minimum_amount:
            continue
        overdue = (today - order.due_date).days
        if not (order.reminders_sent == 0 and overdue >= config.level_1_days):
            continue
        assignment = ReminderAssignment.objects.select_related("template").get(
            sales_account_id=order.sales_account_id, level=1)
        with transaction.atomic():
            locked = Order.objects.select_for_update().get(pk=order.pk)
            if locked.reminders_sent != 0 or Reminder.objects.filter(order=locked, level=1).exists():
                continue
            owed, deadline = order_claim_on(locked, now=now, level=1)
            rendered = render_reminder(CompiledTemplate(assignment.template), locked, level=1, now=now, claim=owed,
                                       deadline=deadline)
            reminder = Reminder.objects.create(order=locked, level=1, trigger="automatic",
                                               recipient=locked.customer_email, subject=rendered.subject,
                                               body=rendered.body, created_at=now)
            EmailMultiAlternatives(rendered.subject, rendered.body, locked.sales_account.sender_email,
                                   [locked.customer_email]).send()
            reminder.status = "sent"
            reminder.sent_at = now
            reminder.save()
            locked.reminders_sent = 1
            locked.last_reminder_at = now
            locked.save()
            sent += 1
    return {"sent": sent, "seconds": time.perf_counter() - start}


def run_job_against(now_iso: str, api_url: str, concurrency: int) -> dict:
    """The job with anymail's Postmark backend pointed at the local simulator."""
    from django.conf import settings

    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "bench", "POSTMARK_API_URL": api_url}
    settings.DUNNING_SEND_CONCURRENCY = concurrency
    return run_job(now_iso)


def in_children(count: int, fn, *args) -> tuple[list[dict], float]:
    """fn in `count` forked children at once (each a worker of its own); returns their results and
    the wall-clock seconds until the last one ended."""
    from django.db import connections

    connections.close_all()
    children = []
    start = time.perf_counter()
    for _ in range(count):
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            try:
                payload = json.dumps({"ok": fn(*args)}, default=str)
            except BaseException as exc:
                payload = json.dumps({"error": f"{type(exc).__name__}: {exc}"})
            with os.fdopen(write_fd, "w") as f:
                f.write(payload)
            os._exit(0)
        os.close(write_fd)
        children.append((pid, read_fd))
    results = []
    for pid, read_fd in children:
        with os.fdopen(read_fd) as f:
            payload = json.loads(f.read() or '{"error": "no result"}')
        os.waitpid(pid, 0)
        if "error" in payload:
            raise RuntimeError(payload["error"])
        results.append(payload["ok"])
    return results, time.perf_counter() - start


def measure_provider_sim(args, now: datetime.datetime) -> list[dict]:
    """The job against the Postmark simulator on 127.0.0.1: each latency, one and two workers."""
    from provider_sim import ProviderSim, SimConfig

    rows = []
    for latency in args.sim_latency_ms:
        for workers in args.sim_workers:
            sim = ProviderSim(0, SimConfig(latency=latency / 1000)).start()
            try:
                prepare_job_orders(args.sim_reminders, now)
                results, seconds = in_children(workers, run_job_against, now.isoformat(), sim.url,
                                               args.sim_concurrency)
            finally:
                sim.stop()
            sent = sum(r["sent"] for r in results)
            accepted = sum(sim.state.accepted.values())
            twice = sum(1 for c in sim.state.accepted.values() if c > 1)
            row = {"latency": latency, "workers": workers, "sent": sent, "accepted": accepted, "twice": twice,
                   "seconds": seconds, "rate": sent / seconds,
                   "errors": "; ".join(r["error"] for r in results if r["error"])[:200]}
            rows.append(row)
            print(f"  simulator {latency:g} ms, {workers} worker(s): sent {sent:,} in {seconds:.1f} s = "
                  f"{row['rate']:,.0f}/s (accepted {accepted:,}, twice {twice})"
                  + (f"  ERROR {row['errors']}" if row["errors"] else ""), flush=True)
    return rows


SIM_BEGIN, SIM_END = "<!-- provider-sim -->", "<!-- /provider-sim -->"


def write_sim_section(args, rows: list[dict]) -> None:
    """Replace (or append) the simulator section of the report."""
    lines = [SIM_BEGIN, "## The job against a provider API (local Postmark simulator)", "",
             f"`scripts/provider_sim.py` on 127.0.0.1 (Postmark's `/email` API, a fixed latency per call); anymail's "
             f"Postmark backend pointed at it (`ANYMAIL_POSTMARK_API_URL`). {args.sim_reminders:,} level-1 reminders "
             f"due; `DUNNING_SEND_CONCURRENCY={args.sim_concurrency}`; workers are `run_dunning` processes started "
             "together (forked), sharing the work through the claim. Reproduce: "
             f"`python scripts/bench.py --only-sim --sim-reminders {args.sim_reminders}`.", "",
             "| provider latency | workers | reminders/s | sent | accepted by the provider | sent twice | errors |",
             "|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['latency']:g} ms | {r['workers']} | {r['rate']:,.0f} | {r['sent']:,} | "
                     f"{r['accepted']:,} | {r['twice']} | {r['errors'] or '-'} |")
    lines += ["", "Before concurrent sending (one call at a time) the same job sent 18 reminders/s at 50 ms.", SIM_END]
    path = Path(args.output)
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if SIM_BEGIN in text and SIM_END in text:
        head, _, rest = text.partition(SIM_BEGIN)
        _, _, tail = rest.partition(SIM_END)
        text = head + "\n".join(lines) + tail
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n"
    path.write_text(text)


# --- main ---------------------------------------------------------------------------------------------

def main() -> int:
    url = bench_database_url()
    is_pg = url.startswith("postgres")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000 if is_pg else 100_000)
    parser.add_argument("--job-reminders", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--naive-reminders", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=30, help="requests per page")
    parser.add_argument("--job-repeat", type=int, default=3)
    parser.add_argument("--no-vacuum", action="store_true",
                        help="PostgreSQL: measure the pages as the table is, without VACUUM ANALYZE first (right "
                             "after the bulk load: never vacuumed, the worst case) and without churn")
    parser.add_argument("--churn", type=int, default=2_500,
                        help="PostgreSQL: orders changed after the VACUUM before the pages are measured again "
                             "(0: no second measurement)")
    parser.add_argument("--overview-output", default=str(ROOT / "docs" / "benchmarks-overview.md"),
                        help="the open-payments page's file (written whole)")
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks-sending.md"),
                        help="the job's and the simulator's sections are replaced in this file (the rest is kept)")
    parser.add_argument("--sim-reminders", type=int, default=10_000)
    parser.add_argument("--sim-latency-ms", type=float, nargs="+", default=[0, 50])
    parser.add_argument("--sim-workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--sim-concurrency", type=int, default=32)
    parser.add_argument("--only-sim", action="store_true", help="only the provider simulator section")
    parser.add_argument("--only-overview", action="store_true", help="only the open-payments page section")
    args = parser.parse_args()

    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_DEBUG"] = "false"
    os.environ["DJANGO_STATIC_MANIFEST"] = "false"  # no collectstatic needed
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-" + "k" * 40)
    os.environ["EMAIL_BACKEND"] = "bench.NullProvider"
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "true"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    if is_pg:
        ensure_postgres_database(url)
    else:
        (ROOT / "var").mkdir(exist_ok=True)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    global NullProvider
    NullProvider = make_null_provider()
    sys.modules["bench"] = sys.modules[__name__]
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    now = datetime.datetime.now(datetime.UTC)
    print(f"bench database: {connection.vendor} {connection.settings_dict['NAME']}", flush=True)
    sys.path.insert(0, str(ROOT / "scripts"))
    if args.only_sim:
        generate(min(args.orders, 1000), now)  # the accounts, methods and templates
        write_sim_section(args, measure_provider_sim(args, now))
        print(f"wrote {args.output}")
        return 0
    gen = generate(args.orders, now)
    print(f"orders: {gen['orders']:,} (generated {gen['generated']:,} in {gen['seconds']:.1f} s)", flush=True)

    overview = measure_overview(args, now)
    write_overview(args, connection, gen, overview)
    print(f"wrote {args.overview_output}")
    if args.only_overview:
        return 0

    jobs = []
    for n in args.job_reminders:
        runs = []
        for _ in range(args.job_repeat):
            prepare_job_orders(n, now)
            result, peak = in_child(run_job, now.isoformat())
            result["peak_rss_mib"] = peak
            runs.append(result)
            print(f"  job over {n:,} due reminders: sent {result['sent']:,} in {result['seconds']:.1f} s = "
                  f"{result['sent'] / result['seconds']:,.0f}/s, peak memory growth {peak:.0f} MiB"
                  + (f"  ERROR {result['error']}" if result["error"] else ""), flush=True)
        rates = [r["sent"] / r["seconds"] for r in runs]
        jobs.append({"reminders": n, "rate_median": statistics.median(rates), "rate_min": min(rates),
                     "peak_rss_mib": max(r["peak_rss_mib"] for r in runs), "sent": runs[-1]["sent"],
                     "runs": len(runs)})
    account_id = prepare_job_orders(args.naive_reminders, now)
    naive, naive_peak = in_child(run_naive, now.isoformat(), account_id)
    naive_rate = naive["sent"] / naive["seconds"]
    prepare_job_orders(args.naive_reminders, now)
    same, _ = in_child(run_job, now.isoformat())
    same_rate = same["sent"] / same["seconds"]
    print(f"  naive over {args.naive_reminders:,}: {naive_rate:,.0f}/s; the job on the same orders: "
          f"{same_rate:,.0f}/s; ratio {same_rate / naive_rate:.1f}x", flush=True)
    sim_rows = measure_provider_sim(args, now)
    write_job_section(args, jobs, naive_rate, same_rate)
    write_sim_section(args, sim_rows)
    print(f"wrote {args.output}")
    return 0


def machine_line(connection) -> str:
    """Where and with what a figure was measured, the load average included (the machine is shared)."""
    import django

    cpu = "unknown"
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    mem = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem = f"{int(Path('/proc/meminfo').read_text().split()[1]) / 1024 / 1024:.0f} GiB"
    return (f"{os.cpu_count()} cores ({cpu}), {mem} RAM, {database_name(connection)}, "
            f"Python {platform.python_version()}, Django {django.get_version()}")


def database_name(connection) -> str:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            version = cursor.fetchone()[0]
            cursor.execute("SHOW autovacuum")
            autovacuum = cursor.fetchone()[0]
        return f"PostgreSQL {version} (autovacuum {autovacuum})"
    import sqlite3

    return f"SQLite {sqlite3.sqlite_version}"


def load_average() -> str:
    with contextlib.suppress(OSError):
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    return "unknown"


def replace_section(path: Path, begin: str, end: str, lines: list[str], title: str) -> None:
    """Put `lines` between the markers `begin` and `end` of the file (appended when they are not
    there yet, the file started with `title` when it does not exist): the rest is kept."""
    text = path.read_text() if path.exists() else f"# {title}\n"
    block = "\n".join([begin, *lines, end])
    if begin in text and end in text:
        head, _, rest = text.partition(begin)
        _, _, tail = rest.partition(end)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def measure_overview(args, now: datetime.datetime) -> dict:
    """The pages after a VACUUM ANALYZE, then after `--churn` changed orders without one (or, with
    `--no-vacuum`, once, as the table is)."""
    from django.db import connection

    runs = []

    def measure(label: str) -> None:
        load = load_average()
        pages = measure_pages(args.repeat)
        for p in pages:
            print(f"  [{label}] {p['page']:<45} median {p['median_ms']:7.1f} ms  p95 {p['p95_ms']:7.1f} ms  "
                  f"queries {p['queries']}  HTTP {p['status']}", flush=True)
        runs.append({"label": label, "pages": pages, "load_before": load, "load_after": load_average()})

    is_pg = connection.vendor == "postgresql"
    churn = None
    if args.no_vacuum or not is_pg:
        measure("as loaded, never vacuumed" if is_pg else "SQLite")
    else:
        vacuum_orders()
        measure("after VACUUM ANALYZE")
        if args.churn:
            churn = churn_orders(args.churn, now)
            print(f"  churn: {churn['paid']:,} orders paid, {churn['added']:,} added, no VACUUM", flush=True)
            measure(f"{churn['paid'] + churn['added']:,} orders changed since the VACUUM")
    plans = explain_level_queries(now)
    for p in plans:
        print(f"  EXPLAIN level {p['level']}: indexes used {p['indexes'] or 'NONE'}", flush=True)
    return {"runs": runs, "plans": plans, "churn": churn, "totals_plan": explain_totals_query(now)}


def explain_totals_query(now: datetime.datetime) -> str:
    """EXPLAIN ANALYZE of the tabs' counts and sums as the unfiltered page reads them (the open
    orders' totals, orders.open_totals), after the churn; "" when they cannot answer."""
    from django.db import connection

    from backoffice.selectors import open_totals_by_level
    from dunning import selectors

    captured = []

    def capture(execute, sql, params, many, context):
        if "orders_opentotal" in sql:
            captured.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(capture):
        open_totals_by_level(now=now, configs=selectors.active_configs(), where={})
    if not captured or connection.vendor != "postgresql":
        return ""
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + captured[0][0], captured[0][1])
        return "\n".join(row[0] for row in cursor.fetchall())


def write_overview(args, connection, gen, overview: dict) -> None:
    """docs/benchmarks-overview.md, whole: it is this script's own file."""
    lines = [
        "# Benchmarks: the open-payments overview",
        "",
        f"Measured {datetime.date.today().isoformat()} by `make bench` (`scripts/bench.py`) on "
        f"{machine_line(connection)}. "
        "The machine is shared with other work: each table gives the load average (1 / 5 / 15 min) when it "
        "started and ended; above a load of 2 the processes wait for a core and every figure grows with the load "
        "(CPU time per request, before and after, is in `docs/performance-notes.md`).",
        "",
        f"Reproduce: `python scripts/bench.py --only-overview --orders {args.orders} --repeat {args.repeat}"
        f"{' --no-vacuum' if args.no_vacuum else f' --churn {args.churn}'}` "
        "(`make bench` runs it with the job and the simulator).",
        "",
        f"## Data: {gen['orders']:,} orders",
        "",
        "Three sales accounts, three payment methods, nine active configs (7/14/21 days); 88 % paid, 2 % "
        "cancelled, 10 % open spread over every level (reminders sent 0-3), 1 % blocked. "
        + (f"Generated in {gen['seconds']:.1f} s." if gen["generated"] else "Generated by an earlier run.")
        + " Each run with churn pays half of `--churn` open orders and adds as many, so the data drifts a "
        "little per run.",
        "",
        "## Open payments page (Django test client, full request, HTML rendered)",
        "",
        f"{args.repeat} requests per page after 2 warm-ups; the target (issue 13) is under 40 ms median for "
        "every level filter, with and without a fresh VACUUM.",
    ]
    churn = overview["churn"]
    for run in overview["runs"]:
        lines += ["", f"### {run['label']}", "",
                  f"Load average {run['load_before']} at the start, {run['load_after']} at the end.", ""]
        if churn and run["label"].endswith("since the VACUUM"):
            lines += [f"{churn['paid']:,} random open orders paid and {churn['added']:,} new open orders added "
                      "after the VACUUM, none since: about the most a table is behind with the orders "
                      "migration 0009's autovacuum settings (0.2 % + 500 changed rows). The open orders' totals "
                      "hold them as deltas of the triggers (no fold in between).", ""]
        lines += ["| page | median | p95 | queries per request | HTTP |", "|---|---:|---:|---:|---:|"]
        for p in run["pages"]:
            lines.append(f"| {p['page']} | {p['median_ms']:.1f} ms | {p['p95_ms']:.1f} ms | "
                         f"{', '.join(map(str, p['queries']))} | {p['status']} |")
    lines += ["", "What each query costs and what was changed: `docs/performance-notes.md`.", ""]
    if overview.get("totals_plan"):
        lines += ["## Query plan of the tabs' counts and sums (the open orders' totals, after the churn)", "",
                  "`backoffice.selectors.open_totals_by_level`, unfiltered page: the group rows, less the newest day "
                  "rows that miss their level, plus the deltas not folded yet (orders.open_totals).", "", "```",
                  overview["totals_plan"].strip(), "```", ""]
    lines += ["## Query plans of the level filters (the page's ids)", ""]
    for p in overview["plans"]:
        lines += [f"Level {p['level']}: indexes used: {', '.join(p['indexes']) or 'none'}", "", "```",
                  p["plan_page"].strip(), "```", ""]
    path = Path(args.overview_output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


JOB_BEGIN, JOB_END = "<!-- bench-job -->", "<!-- /bench-job -->"


def write_job_section(args, jobs, naive_rate, same_rate) -> None:
    """The job's section of the sending benchmarks (`--output`); the rest of the file is kept."""
    from django.db import connection

    lines = ["## The job (automatic level-1 reminders through anymail's test backend, nothing kept)", "",
             f"Measured {datetime.date.today().isoformat()} by `make bench` (`python scripts/bench.py --job-reminders "
             f"{' '.join(map(str, args.job_reminders))} --naive-reminders {args.naive_reminders}`) on "
             f"{machine_line(connection)}; load average {load_average()} at the end.", "",
             "| due reminders | reminders/s (median) | slowest run | peak memory growth of the job process | runs |",
             "|---:|---:|---:|---:|---:|"]
    for j in jobs:
        lines.append(f"| {j['reminders']:,} | {j['rate_median']:,.0f} | {j['rate_min']:,.0f}/s | "
                     f"{j['peak_rss_mib']:.0f} MiB | {j['runs']} |")
    lines += ["", f"Naive loop (rule evaluated in Python per order, a transaction and several queries per reminder, "
                  f"template compiled per reminder) on {args.naive_reminders:,} due orders: "
                  f"**{naive_rate:,.0f} reminders/s**; the job on the same orders: **{same_rate:,.0f}/s**, "
                  f"**{same_rate / naive_rate:.1f}x**."]
    replace_section(Path(args.output), JOB_BEGIN, JOB_END, lines, "Benchmarks: sending")


if __name__ == "__main__":
    sys.exit(main())
