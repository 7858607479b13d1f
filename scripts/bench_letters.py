"""Time reminder letters (docs/benchmarks-letters.md): one letter as a PDF, and N letters as one PDF,
through the code the back office runs (dunning.letters), on a throwaway SQLite test database.

    .venv/bin/python scripts/bench_letters.py [--letters 1000] [--single 20] [--out /tmp/letters.pdf]

The orders carry a full postal address, the sales account an IBAN, BIC, account holder and a logo,
and the claims are in EUR, so every letter has its GiroCode: the most a letter draws."""

from __future__ import annotations

import argparse
import datetime
import io
import os
import resource
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")
os.environ.pop("DATABASE_URL", None)  # always the in-memory SQLite test database

import django  # noqa: E402

django.setup()

from django.core.files.base import ContentFile  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

from accounts.models import SalesAccount  # noqa: E402
from dunning.letters import letters_of, render_letter_pdf, render_letters_pdf  # noqa: E402
from dunning.models import Reminder  # noqa: E402
from orders.models import Order, PaymentMethod  # noqa: E402

TZ = datetime.UTC


def logo_png() -> bytes:
    import segno

    out = io.BytesIO()  # any small PNG will do: a QR code of the shop's name, 200 px
    segno.make("Beispiel-Shop GmbH").save(out, kind="png", scale=8)
    return out.getvalue()


def build(n: int) -> list[int]:
    account = SalesAccount.objects.create(
        name="Webshop", sender_email="billing@shop.example", company_name="Beispiel-Shop GmbH",
        street="Hauptstraße 1", postcode="10115", city="Berlin", iban="DE02 1203 0000 0000 2020 51",
        bic="BYLADEM1001", account_holder="Beispiel-Shop GmbH",
        legal_details="Geschäftsführerin: Erika Beispiel\nAmtsgericht Berlin HRB 12345\nUSt-IdNr. DE123456789")
    account.logo.save("logo.png", ContentFile(logo_png()), save=True)
    method = PaymentMethod.objects.create(code="invoice", name="Rechnung", payment_term_days=14)
    orders = Order.objects.bulk_create([
        Order(sales_account=account, payment_method=method, number=f"A{100000 + i}",
              customer_name=f"Kundin Nummer {i} Mustermann", customer_email=f"c{i}@example.com",
              customer_number=f"K-{20000 + i}", customer_street=f"Lindenallee {i % 200 + 1}",
              customer_postcode="80331", customer_city="München", total=Decimal("129.90") + i,
              ordered_at=datetime.datetime(2026, 10, 1, 10, tzinfo=TZ)) for i in range(n)])
    created = datetime.datetime(2026, 11, 26, 9, tzinfo=TZ)
    reminders = Reminder.objects.bulk_create([
        Reminder(order=o, level=2, trigger="manual", recipient=o.customer_email, subject="s", body="b",
                 status="sent", created_at=created, sent_at=created, deadline=datetime.date(2026, 12, 3),
                 claim_snapshot={"principal": f"{o.total:.2f}", "paid": "0.00", "fees": "2.50", "flat_fee": "0.00",
                                 "interest": "1.17", "total_due": f"{o.total + Decimal('3.67'):.2f}"})
        for o in orders])
    return [r.pk for r in reminders]


def children_cpu() -> float:
    """CPU seconds of the finished child processes (the rendering processes of a large batch)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--letters", type=int, default=1000)
    parser.add_argument("--single", type=int, default=20, help="single letters to time (median reported)")
    parser.add_argument("--out", default="", help="write the combined PDF here")
    args = parser.parse_args()
    connection.creation.create_test_db(verbosity=0)
    with tempfile.TemporaryDirectory() as media, override_settings(MEDIA_ROOT=media):
        ids = build(max(args.letters, args.single))
        single = letters_of(ids[: args.single])
        render_letter_pdf(single[0])  # warm up: fonts, templates
        times, cpu = [], []
        for reminder in single:
            start, start_cpu = time.perf_counter(), time.process_time()
            pdf = render_letter_pdf(reminder)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        print(f"single letter: median {statistics.median(times) * 1000:.0f} ms wall, "
              f"{statistics.median(cpu) * 1000:.0f} ms CPU; max {max(times) * 1000:.0f} ms wall over {len(times)} "
              f"({len(pdf):,} bytes each)")
        start, start_cpu, start_children = time.perf_counter(), time.process_time(), children_cpu()
        batch = letters_of(ids[: args.letters])
        pdf = render_letters_pdf(batch)
        took = time.perf_counter() - start
        took_cpu = time.process_time() - start_cpu + children_cpu() - start_children
        print(f"{len(batch):,} letters in one PDF: {took:.1f} s wall, {took_cpu:.1f} s CPU in all processes "
              f"({took / len(batch) * 1000:.0f} ms wall a letter, {len(pdf) / 1e6:.1f} MB)")
        if args.out:
            Path(args.out).write_bytes(pdf)
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
