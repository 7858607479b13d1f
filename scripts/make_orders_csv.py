#!/usr/bin/env python
"""Write a CSV file of generated orders for `manage.py import_orders` (benchmarks, demos).

    python scripts/make_orders_csv.py /tmp/orders.csv --rows 100000
    python scripts/make_orders_csv.py /tmp/payments.csv --rows 100000 --paid 0.8   # same orders, more paid

The same --seed gives the same orders; a higher --paid marks a superset of them as paid, so a second
file exercises the update path. Sales accounts and payment methods default to those of `seed_demo`.
Needs no Django."""

from __future__ import annotations

import argparse
import csv
import datetime
import random
import sys
from pathlib import Path

COLUMNS = ["number", "sales_account", "payment_method", "customer_name", "customer_email", "language", "total",
           "currency", "ordered_at", "paid_at", "cancelled_at"]
FIRST = ["Anna", "Lukas", "Sophie", "Jonas", "Marie", "Felix", "Emma", "Paul", "Oliver", "Amelia", "George", "Isla"]
LAST = ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Smith", "Jones", "Taylor", "Brown"]


def generate(path: Path, *, rows: int, seed: int, paid: float, cancelled: float, delimiter: str,
             accounts: list[str], methods: list[str], today: datetime.date, bom: bool) -> None:
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8-sig" if bom else "utf-8") as fh:
        writer = csv.writer(fh, delimiter=delimiter)
        writer.writerow(COLUMNS)
        for i in range(rows):
            # Draw every value for every row, so that --paid does not shift the others.
            account = accounts[i % len(accounts)]
            method = rng.choice(methods)
            first, last = rng.choice(FIRST), rng.choice(LAST)
            email = rng.random() >= 0.03
            language = rng.choice(["", "", "", "de", "en"])
            total = f"{rng.randint(1, 150000) / 100:.2f}"
            age = rng.randint(0, 180)
            ordered = datetime.datetime.combine(today - datetime.timedelta(days=age),
                                                datetime.time(rng.randint(0, 23), rng.randint(0, 59)))
            paid_roll, cancel_roll, paid_after = rng.random(), rng.random(), rng.randint(0, 30)
            paid_at = ordered + datetime.timedelta(days=min(paid_after, age), hours=1) if paid_roll < paid else None
            cancelled_at = (ordered + datetime.timedelta(days=min(paid_after, age))
                            if paid_at is None and cancel_roll < cancelled else None)
            writer.writerow([
                f"B{i:08d}", account, method, f"{first} {last}",
                f"{first}.{last}{i}@example.com".lower().replace("ü", "ue") if email else "",
                language, total, "EUR", ordered.isoformat(timespec="seconds"),
                paid_at.isoformat(timespec="seconds") if paid_at else "",
                cancelled_at.date().isoformat() if cancelled_at else "",
            ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--paid", type=float, default=0.7, help="share of paid orders (0..1)")
    parser.add_argument("--cancelled", type=float, default=0.05, help="share of the unpaid ones cancelled")
    parser.add_argument("--semicolon", action="store_true", help="';' as delimiter (German Excel)")
    parser.add_argument("--bom", action="store_true", help="start with a UTF-8 byte order mark")
    parser.add_argument("--accounts", default="Webshop,eBay,Amazon", help="sales account names, comma-separated")
    parser.add_argument("--methods", default="prepayment,invoice,paypal,cash_on_delivery",
                        help="payment method codes, comma-separated")
    parser.add_argument("--today", type=datetime.date.fromisoformat, default=datetime.date.today(),
                        help="orders are up to 180 days older than this date (ISO, default today)")
    args = parser.parse_args(argv)
    generate(args.path, rows=args.rows, seed=args.seed, paid=args.paid, cancelled=args.cancelled,
             delimiter=";" if args.semicolon else ",", accounts=args.accounts.split(","),
             methods=args.methods.split(","), today=args.today, bom=args.bom)
    print(f"wrote {args.rows} orders to {args.path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
