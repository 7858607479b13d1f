"""Reads of the payments app: an order's payments and outstanding amount, the unmatched queue
and its suggestions, overpaid orders."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import DecimalField, F, OuterRef, Prefetch, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, Upper

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
    """Orders staff may mean: every order (any state) whose number is a token of the texts, then
    open orders of the same amount and currency from a customer of the same name."""
    cands = matching.candidates(payment.reference)
    found = list(Order.objects.annotate(u=Upper("number")).filter(u__in=list(cands)[:5000], cancelled_at__isnull=True)
                 .select_related("sales_account").order_by("-ordered_at")[:limit]) if cands else []
    if len(found) < limit and payment.counterparty_name:
        seen = {o.pk for o in found}
        found += [o for o in Order.objects.filter(paid_at__isnull=True, cancelled_at__isnull=True,
                                                  total=payment.amount, currency=payment.currency,
                                                  customer_name__iexact=payment.counterparty_name)
                  .select_related("sales_account")[:limit] if o.pk not in seen][: limit - len(found)]
    return found
