"""Reads of the payments app: an order's payments and outstanding amount, the unmatched queue
and its suggestions, overpaid orders."""

from __future__ import annotations

from decimal import Decimal
from functools import reduce
from operator import or_

from django.db.models import DecimalField, F, OuterRef, Prefetch, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, Upper

from common.iterables import chunked
from orders.models import Order

from . import matching
from .models import UNMATCHED, Payment


def paid_amount_subquery():
    """The sum of an order's credit payments (0 when none), for annotations."""
    sums = (Payment.objects.filter(order=OuterRef("pk"), kind=Payment.Kind.CREDIT).order_by()
            .values("order").annotate(s=Sum("amount")).values("s"))
    return Coalesce(Subquery(sums, output_field=DecimalField(max_digits=14, decimal_places=2)), Value(Decimal("0")),
                    output_field=DecimalField(max_digits=14, decimal_places=2))


def with_paid_amount(qs: QuerySet[Order]) -> QuerySet[Order]:
    return qs.annotate(paid_amount=paid_amount_subquery())


def order_payments_summary(order: Order) -> dict:
    payments = list(order.payments.select_related("statement", "parent").order_by("booked_on", "id"))
    paid = sum((p.amount for p in payments if p.kind == Payment.Kind.CREDIT), Decimal("0"))
    return {"payments": payments, "paid": paid, "outstanding": order.outstanding if payments or order.is_open
            else Decimal("0"), "overpaid": max(paid - order.total, Decimal("0"))}


def unmatched_payments() -> QuerySet[Payment]:
    return Payment.objects.filter(UNMATCHED).select_related("statement").order_by("-booked_on", "-id")


def dismissed_payments() -> QuerySet[Payment]:
    """Credits staff marked "not an order payment", latest first (to put one back)."""
    return (Payment.objects.filter(dismissed_at__isnull=False).select_related("dismissed_by")
            .order_by("-dismissed_at", "-id"))


def split_payments() -> QuerySet[Payment]:
    """Credits split over several orders, latest first, with their parts and orders (two queries)."""
    parts = Payment.objects.select_related("order").order_by("id")
    return (Payment.objects.filter(split_at__isnull=False).select_related("split_by")
            .prefetch_related(Prefetch("parts", queryset=parts)).order_by("-split_at", "-id"))


def unmatched_count() -> int:
    return Payment.objects.filter(UNMATCHED).count()


def overpaid_orders() -> QuerySet[Order]:
    """Orders whose credit payments exceed their total (the surplus is staff's to refund)."""
    return (with_paid_amount(Order.objects.filter(payments__isnull=False).distinct())
            .filter(paid_amount__gt=F("total")).order_by("-id"))


def payment_suggestions(payment: Payment, *, limit: int = 10) -> list[Order]:
    """Orders staff may mean: every order (not cancelled, any other state) whose number is a token of
    the texts, newest first, then open orders of the same amount and currency from a customer of the
    same name."""
    return suggestions_by_payment([payment], limit=limit)[payment.pk]


def suggestions_by_payment(payments: list[Payment], *, limit: int = 10) -> dict[int, list[Order]]:
    """`payment_suggestions` of many payments in two queries (the unmatched page's 200 rows): the
    orders any of their texts name (the full UPPER(number) index), then the open orders of the same
    amount, currency and customer name of any of them."""
    wanted = {p.pk: matching.candidates(p.reference) for p in payments}
    named: dict[str, list[Order]] = {}
    numbers = sorted(set().union(*wanted.values())) if wanted else []
    for chunk in chunked(numbers, matching.LOOKUP_CHUNK):
        for order in (Order.objects.annotate(u=Upper("number")).filter(u__in=chunk, cancelled_at__isnull=True)
                      .select_related("sales_account").order_by("-ordered_at", "-id")):
            named.setdefault(order.u, []).append(order)
    by_name = [p for p in payments if p.counterparty_name]
    same: dict[tuple, list[Order]] = {}
    if by_name:
        wanted_q = reduce(or_, (Q(total=p.amount, currency=p.currency, customer_name__iexact=p.counterparty_name)
                                for p in by_name))
        for order in (Order.objects.filter(wanted_q, paid_at__isnull=True, cancelled_at__isnull=True)
                      .select_related("sales_account").order_by("-ordered_at", "-id")[:limit * len(by_name)]):
            same.setdefault((order.total, order.currency, order.customer_name.casefold()), []).append(order)
    found: dict[int, list[Order]] = {}
    for p in payments:
        orders = sorted({o.pk: o for c in wanted[p.pk] for o in named.get(c, ())}.values(),
                        key=lambda o: (o.ordered_at, o.pk), reverse=True)[:limit]
        if len(orders) < limit and p.counterparty_name:
            seen = {o.pk for o in orders}
            key = (p.amount, p.currency, p.counterparty_name.casefold())
            orders += [o for o in same.get(key, []) if o.pk not in seen][: limit - len(orders)]
        found[p.pk] = orders
    return found
