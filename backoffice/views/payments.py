"""Payments in: the statement upload (the same service as `manage.py import_statement`) and the
unmatched queue (assign to an order, split over several orders of one customer, "not an order
payment", and the undo of each). Every action goes through payments.services; a refused file or
action is a message, never a 500."""

from __future__ import annotations

import re
from decimal import Decimal

from django import forms
from django.contrib import messages
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from orders.models import Order
from payments.models import Payment
from payments.selectors import (
    dismissed_payments,
    overpaid_orders,
    split_payments,
    suggestions_by_payment,
    unmatched_count,
    unmatched_payments,
)
from payments.services import (
    ImportRefused,
    PaymentActionError,
    payment_assign,
    payment_dismiss,
    payment_split,
    payment_unassign,
    payment_undismiss,
    payment_unsplit,
    statements_import,
)

from ..permissions import back_office_required

MAX_FILES = 20
MAX_UPLOAD = 200 * 1024 * 1024


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class StatementUploadForm(forms.Form):
    files = forms.FileField(label=gettext_lazy("Statement files (camt.053 XML or ZIP, MT940)"),
                            widget=MultipleFileInput(attrs={"multiple": True}), required=False)
    dry_run = forms.BooleanField(label=gettext_lazy("Check only (write nothing)"), required=False)


def _uploads(request: HttpRequest) -> list:
    return request.FILES.getlist("files")


@back_office_required
def statement_upload(request: HttpRequest) -> HttpResponse:
    form = StatementUploadForm(request.POST or None, request.FILES or None)
    result = error = None
    status = 200
    if request.method == "POST":
        uploads = _uploads(request)
        if not uploads:
            error, status = _("Choose at least one statement file."), 400
        elif len(uploads) > MAX_FILES or sum(u.size for u in uploads) > MAX_UPLOAD:
            error, status = _("At most %(n)d files and 200 MB per upload.") % {"n": MAX_FILES}, 400
        else:
            files = [(u.name, _reopener(u)) for u in uploads]
            try:
                result = statements_import(files, dry_run=bool(request.POST.get("dry_run")), now=timezone.now(),
                                           user=request.user)
            except ImportRefused as exc:
                error, status = _("Nothing was imported: %(problem)s") % {"problem": exc}, 400
    return render(request, "backoffice/statement_upload.html", {"form": form, "result": result, "error": error},
                  status=status)


def _reopener(upload):
    def open_again():
        upload.seek(0)
        return _NoClose(upload)
    return open_again


class _NoClose:
    """The upload stays open between the two reads (validation, then import)."""

    def __init__(self, f):
        self.f = f

    def read(self, *args):
        return self.f.read(*args)

    def seek(self, *args):
        return self.f.seek(*args)

    def tell(self):
        return self.f.tell()

    def seekable(self):
        return True

    def readable(self):
        return True

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@back_office_required
def unmatched(request: HttpRequest) -> HttpResponse:
    payments = list(unmatched_payments()[:200])
    query = request.GET.get("q", "").strip()[:64]
    suggestions = suggestions_by_payment(payments, limit=5)  # two queries for all rows
    for payment in payments:
        payment.suggestions = suggestions[payment.pk]
        payment.split_rows = _split_rows(payment)
    found = []
    if query:
        found = list(Order.objects.filter(Q(number__iexact=query) | Q(customer_name__icontains=query),
                                          cancelled_at__isnull=True)
                     .select_related("sales_account").order_by("-ordered_at")[:20])
    return render(request, "backoffice/unmatched_payments.html", {
        "payments": payments, "query": query, "found": found, "overpaid": list(overpaid_orders()[:50]),
        "unmatched_waiting": unmatched_count(), "dismissed": list(dismissed_payments()[:50]),
        "split": list(split_payments()[:50]),
    })


@back_office_required
def unmatched_count_json(request: HttpRequest) -> JsonResponse:
    """The navigation badge's number (fetched by backoffice.js)."""
    return JsonResponse({"unmatched": unmatched_count()})


SPLIT_ROWS = 3  # order/amount rows the split form shows (the service takes up to MAX_PARTS)


def _split_rows(payment: Payment) -> list[tuple[str, Decimal | None]]:
    """The split form starts with the open orders the texts name (two orders in one transfer), in
    the order the texts name them, each with its total as far as the payment reaches."""
    rows: list[tuple[str, Decimal | None]] = []
    left = payment.amount
    text = payment.reference.upper()

    def position(order: Order) -> int:
        found = text.find(order.number.upper())
        return found if found >= 0 else len(text)

    for order in sorted((o for o in payment.suggestions if o.is_open), key=position)[:SPLIT_ROWS]:
        amount = min(order.total, left)
        rows.append((order.number, amount if amount > 0 else None))
        left -= amount
    return rows + [("", None)] * (SPLIT_ROWS - len(rows))
_AMOUNT = re.compile(r"^\d{1,10}([.,]\d{1,2})?$")


def parse_amount(text: str) -> Decimal | None:
    """An amount as staff type it: "12,50" or "12.50" (no thousands separator); None if not."""
    text = text.strip().replace("\u00a0", "").replace(" ", "").removesuffix("€")
    return Decimal(text.replace(",", ".")) if _AMOUNT.match(text) else None


def _order_by_number(number: str) -> Order:
    """The one order that has this number (or id); PaymentActionError when none or several."""
    number = number.strip()
    orders = list(Order.objects.filter(Q(number=number) | Q(pk=int(number) if number.isdigit() else 0))[:2])
    if len(orders) != 1:
        raise PaymentActionError(_("Enter the number of exactly one order (%(number)s).") % {"number": number[:64]})
    return orders[0]


def _split_parts(request: HttpRequest) -> list[tuple[int, Decimal]]:
    numbers, amounts = request.POST.getlist("split_order"), request.POST.getlist("split_amount")
    parts = []
    for number, amount_text in zip(numbers, amounts, strict=False):
        if not number.strip() and not amount_text.strip():
            continue
        amount = parse_amount(amount_text)
        if not number.strip() or amount is None:
            raise PaymentActionError(_("Give each part an order number and an amount such as 12,50."))
        parts.append((_order_by_number(number).pk, amount))
    return parts


@back_office_required
@require_POST
def payment_action(request: HttpRequest, pk: int) -> HttpResponse:
    payment = get_object_or_404(Payment, pk=pk)
    action = request.POST.get("action")
    now = timezone.now()
    try:
        if action == "assign":
            order = _order_by_number(request.POST.get("order", ""))
            payment_assign(payment_id=payment.pk, order_id=order.pk, user=request.user, now=now)
            messages.success(request, _("The payment was assigned to order %(number)s.") % {"number": order.number})
        elif action == "unassign":
            order_id = payment.order_id
            payment_unassign(payment_id=payment.pk, user=request.user, now=now)
            messages.success(request, _("The payment was taken off the order."))
            return redirect("backoffice:order_detail", pk=order_id)
        elif action == "split":
            parts = payment_split(payment_id=payment.pk, parts=_split_parts(request), user=request.user, now=now)
            messages.success(request, _("The payment was split over %(n)d orders.") % {"n": len(parts)})
        elif action == "unsplit":
            payment_unsplit(payment_id=payment.pk, user=request.user, now=now)
            messages.success(request, _("The split was undone; the payment is back among the unmatched payments."))
            if payment.parent_id is not None and request.POST.get("from") == "order":
                return redirect("backoffice:order_detail", pk=payment.order_id)
        elif action == "dismiss":
            payment_dismiss(payment_id=payment.pk, user=request.user, now=now)
            messages.success(request, _("The payment was marked as not an order payment."))
        elif action == "undismiss":
            payment_undismiss(payment_id=payment.pk, user=request.user, now=now)
            messages.success(request, _("The payment is back among the unmatched payments."))
        else:
            raise PaymentActionError(_("Unknown action."))
    except PaymentActionError as exc:
        messages.error(request, str(exc))
    return redirect("backoffice:unmatched_payments")
