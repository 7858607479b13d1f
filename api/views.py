"""The API's views: thin. They read the key's sales account, call api.services / orders.services,
and answer JSON (errors as RFC 9457 problem documents, api.auth). A key sees its own sales
account's orders only: any other number is 404, exactly like a number that does not exist."""

from __future__ import annotations

import datetime
from decimal import Decimal

from django.db.models import Prefetch, QuerySet, prefetch_related_objects
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from dunning.models import DunningLevel, Reminder
from dunning.selectors import NOTHING, active_configs, level_annotation, level_q, order_level
from orders.models import OPEN, Order
from orders.services import BulkSkip, orders_block_dunning, orders_unblock_dunning
from orders.validation import control_character
from payments.models import Payment
from payments.services import OrderNotFound, PaymentActionError, api_transaction_id, payment_record_api

from . import serializers
from .problems import problem
from .schema import (
    QUERY_INVALID,
    RATE_LIMIT_HEADERS,
    RATE_LIMIT_PARAMETERS,
    UNKNOWN_PARAMETER,
    responses,
)
from .services import MAX_BULK, OrdersInvalid, orders_upsert, payment_input


class ApiView(APIView):
    """An API operation. It refuses query parameters it does not take (400 with each one), after the
    key and the rate limit are checked: a misspelt filter (`?dunning_levle=1`) would otherwise
    answer every order, and the order and payment bodies refuse unknown fields the same way."""

    query_parameters: frozenset[str] = frozenset()

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        quota = getattr(request, "rate_limit", None)
        if quota is not None:  # (not on a 401: the key is checked before the quota)
            for name, value in zip(RATE_LIMIT_HEADERS, quota, strict=True):
                response[name] = str(value)
        return response

    def initial(self, request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        unknown = sorted(set(request.query_params) - self.query_parameters)
        if unknown:
            takes = ", ".join(sorted(self.query_parameters)) or "none"
            raise exceptions.ValidationError(
                {name: [f"unknown query parameter (this operation takes {takes})"] for name in unknown})


def _iso(value: datetime.datetime | None) -> str | None:
    return value.isoformat() if value else None


def order_json(order: Order) -> dict:
    level = getattr(order, "level", None)
    paid = order.paid_at is not None
    return {
        "number": order.number,
        "payment_method": order.payment_method.code,
        "customer_name": order.customer_name,
        "customer_email": order.customer_email,
        "language": order.language,
        "total": str(order.total),
        "currency": order.currency,
        "ordered_at": _iso(order.ordered_at),
        "paid_at": _iso(order.paid_at),
        "cancelled_at": _iso(order.cancelled_at),
        "customer_is_business": order.customer_is_business,
        "customer_number": order.customer_number,
        "customer_street": order.customer_street,
        "customer_postcode": order.customer_postcode,
        "customer_city": order.customer_city,
        "customer_country": order.customer_country,
        "open": order.is_open,
        "dunning_level": None if level is None else (DunningLevel(level).param if level == DunningLevel.COMPLETED
                                                     else int(level)),
        "reminders_sent": order.reminders_sent,
        "last_reminder_at": _iso(order.last_reminder_at),
        "dunning_blocked": order.dunning_blocked,
        "dunning_block_reason": order.dunning_block_reason,
        "flagged_for_cancellation_at": _iso(order.flagged_for_cancellation_at),
        "reservation_released_at": _iso(order.reservation_released_at),
        "outstanding": str(Decimal("0.00") if paid else order.total),
        "updated_at": _iso(order.updated_at),
        "reminders": [{"level": r.level, "status": r.status, "sent_at": _iso(r.sent_at)}
                      for r in order.reminders.all()],
    }


def orders_of(request, *, now: datetime.datetime) -> QuerySet[Order]:
    """The key's sales account's orders, with their dunning level and reminders."""
    account_id = request.user.sales_account.id
    configs = active_configs(sales_account_id=account_id)
    return (Order.objects.filter(sales_account_id=account_id).select_related("payment_method")
            .annotate(level=level_annotation(now=now, configs=configs))
            .prefetch_related(Prefetch("reminders", queryset=Reminder.objects.order_by("level", "id"))))


def _order_or_404(request, number: str, now: datetime.datetime) -> Order:
    """One order of the key's sales account with its level and reminders. The level is computed
    in Python from the loaded row (`order_level`: the same rule, no CASE of four levels to resolve
    and compile per request), the reminders in a second query."""
    account_id = request.user.sales_account.id
    order = (Order.objects.filter(sales_account_id=account_id, number=number).select_related("payment_method")
             .order_by().first())
    if order is None:
        raise exceptions.NotFound(f"No order {number!r}.")
    order.level = order_level(order, now=now, configs=active_configs(sales_account_id=account_id))
    prefetch_related_objects([order], Prefetch("reminders", queryset=Reminder.objects.order_by("level", "id")))
    return order


def _invalid(exc: OrdersInvalid, *, single: bool) -> Response:
    errors = []
    for e in exc.errors:
        d = e.as_dict()
        if single:
            d.pop("index", None)
        errors.append(d)
    return problem(400, "The order data is invalid; nothing was written. See errors.", errors=errors)


class OrderDetailView(ApiView):
    @extend_schema(responses=responses({200: serializers.OrderOutSerializer}, 404, invalid=UNKNOWN_PARAMETER),
                   parameters=RATE_LIMIT_PARAMETERS, summary="Read an order with its dunning state")
    def get(self, request, number: str):
        return Response(order_json(_order_or_404(request, number, timezone.now())))

    @extend_schema(request=serializers.OrderInSerializer,
                   parameters=RATE_LIMIT_PARAMETERS,
                   responses=responses({200: serializers.OrderOutSerializer, 201: serializers.OrderOutSerializer},
                                       400, 413, 415),
                   summary="Create or update an order (never touches dunning state)")
    def put(self, request, number: str):
        data = request.data
        if not isinstance(data, dict):
            return problem(400, "The body must be a JSON object.")
        if "number" in data and data["number"] != number:
            return problem(400, "The number in the body differs from the one in the URL.",
                           errors=[{"field": "number", "detail": "differs from the URL"}])
        now = timezone.now()
        try:
            _result, created = orders_upsert([{**data, "number": number}], sales_account=request.user.sales_account,
                                             now=now)
        except OrdersInvalid as exc:
            return _invalid(exc, single=True)
        return Response(order_json(_order_or_404(request, number, now)), status=201 if created else 200)


class OrderBulkView(ApiView):
    @extend_schema(request=serializers.BulkInSerializer,
                   parameters=RATE_LIMIT_PARAMETERS,
                   responses=responses({200: serializers.BulkOutSerializer}, 400, 413, 415),
                   summary=f"Create or update up to {MAX_BULK} orders, all or nothing")
    def post(self, request):
        data = request.data
        items = data.get("orders") if isinstance(data, dict) else None
        if not isinstance(items, list):
            return problem(400, 'The body must be {"orders": [...]}.', errors=[{"field": "orders",
                                                                                "detail": "must be a list"}])
        if len(items) > MAX_BULK:
            return problem(400, f"At most {MAX_BULK} orders per request ({len(items)} given); nothing was written.",
                           errors=[{"field": "orders", "detail": f"at most {MAX_BULK} items"}])
        try:
            result, _created = orders_upsert(items, sales_account=request.user.sales_account, now=timezone.now())
        except OrdersInvalid as exc:
            return _invalid(exc, single=False)
        return Response({"created": result.created, "updated": result.updated, "unchanged": result.unchanged})


class OrderCursorPagination(CursorPagination):
    ordering = ("updated_at", "id")
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000
    invalid_cursor_message = "Invalid cursor: pass a page's next or previous link as it is."


# what `updated_since` accepts (datetime.fromisoformat), as a pattern; a day the month lacks stays a 400
ISO_DATE_OR_TIME = (r"^(\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
                    r"([T ]([01]\d|2[0-3])(:[0-5]\d(:[0-5]\d(\.\d{1,6})?)?)?(Z|[+-]([01]\d|2[0-3])(:?[0-5]\d)?)?)?)?$")


def page_size_problem(raw: str | None) -> str | None:
    """What is wrong with `page_size` (a whole number from 1; above the maximum it is capped), or None."""
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        return "must be a whole number of at least 1"
    return None


class OrderListView(ApiView):
    query_parameters = frozenset({"dunning_level", "open", "updated_since", "cursor", "page_size"})

    @extend_schema(
        parameters=[
            # An empty value is no filter (as in the back office's forms), so each admits "".
            OpenApiParameter("dunning_level", {"type": "string", "enum": ["", "1", "2", "3", "completed"]},
                             description="the orders at this level now"),
            OpenApiParameter("open", {"type": "string", "pattern": "^([tT][rR][uU][eE]|[fF][aA][lL][sS][eE]|[01])?$"},
                             description="true (or 1): unpaid and not cancelled; false (or 0): paid or cancelled"),
            OpenApiParameter("updated_since", {"type": "string", "pattern": ISO_DATE_OR_TIME},
                             description="changed at or after this ISO 8601 date or date-time (without an offset: "
                                         "Berlin time)"),
            OpenApiParameter("cursor", str, description="from a page's `next` or `previous` link; a bad one is 404"),
            OpenApiParameter("page_size", {"anyOf": [{"type": "integer", "minimum": 1},
                                                     {"type": "string", "maxLength": 0}]},
                             description=f"default {OrderCursorPagination.page_size}; more than "
                                         f"{OrderCursorPagination.max_page_size} gives "
                                         f"{OrderCursorPagination.max_page_size}"),
            *RATE_LIMIT_PARAMETERS,
        ],
        responses=responses({200: serializers.OrderPageSerializer}, 400, 404, invalid=QUERY_INVALID),
        summary="List orders (cursor-paginated, oldest change first)", operation_id="orders_list")
    def get(self, request):
        now = timezone.now()
        qs = orders_of(request, now=now)
        errors = {}
        level_param = request.query_params.get("dunning_level")
        if level_param:
            level = DunningLevel.from_param(level_param)
            if level is None:
                errors["dunning_level"] = ['must be 1, 2, 3 or "completed"']
            else:
                q = level_q(level, now=now, configs=active_configs(sales_account_id=request.user.sales_account.id))
                qs = qs.none() if q is NOTHING else qs.filter(q)
        open_param = request.query_params.get("open")
        if open_param:
            if open_param.lower() not in ("true", "false", "1", "0"):
                errors["open"] = ["must be true or false"]
            else:
                qs = qs.filter(OPEN) if open_param.lower() in ("true", "1") else qs.exclude(OPEN)
        since = request.query_params.get("updated_since")
        if since:
            try:
                value = datetime.datetime.fromisoformat(since)
            except ValueError:
                errors["updated_since"] = ["must be an existing ISO 8601 date or date-time, e.g. 2026-11-26 or "
                                           "2026-11-26T10:00:00+01:00"]
            else:
                try:
                    if timezone.is_naive(value):
                        value = timezone.make_aware(value)
                    value = value.astimezone(datetime.UTC)  # 0001-01-01 in Berlin is before the year 1 in UTC
                except (OverflowError, ValueError):
                    errors["updated_since"] = ["is out of range: it must lie between the years 1 and 9999 in UTC"]
                else:
                    qs = qs.filter(updated_at__gte=value)
        size_problem = page_size_problem(request.query_params.get("page_size"))
        if size_problem:
            errors["page_size"] = [size_problem]
        if errors:
            raise exceptions.ValidationError(errors)
        paginator = OrderCursorPagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response([order_json(o) for o in page])


class DunningBlockView(ApiView):
    @extend_schema(request=serializers.BlockInSerializer,
                   parameters=RATE_LIMIT_PARAMETERS,
                   responses=responses({200: serializers.OrderOutSerializer}, 400, 404, 409, 413, 415,
                                       invalid=("The request is invalid; see errors.", [
                                           {"pointer": "/reason", "detail": "required: why dunning is blocked"}])),
                   summary="Block dunning for an open order (with a reason)")
    def post(self, request, number: str):
        now = timezone.now()
        order = _order_or_404(request, number, now)
        reason = request.data.get("reason") if isinstance(request.data, dict) else None
        if not isinstance(reason, str) or not reason.strip():
            raise exceptions.ValidationError({"reason": ["required: why dunning is blocked"]})
        if len(reason) > 200:
            raise exceptions.ValidationError({"reason": ["at most 200 characters"]})
        char = control_character(reason)
        if char:
            raise exceptions.ValidationError({"reason": [f"contains a control character ({char}); one line of text"]})
        result = orders_block_dunning(order_ids=[order.id], reason=reason, user=None, now=now)
        if result.skipped.get(order.id) == BulkSkip.NOT_OPEN:
            return problem(409, "The order is paid or cancelled: there is no dunning to block.")
        return Response(order_json(_order_or_404(request, number, now)))

    @extend_schema(request=None, parameters=RATE_LIMIT_PARAMETERS,
                   responses=responses({200: serializers.OrderOutSerializer}, 404, 409, invalid=UNKNOWN_PARAMETER),
                   summary="Unblock dunning")
    def delete(self, request, number: str):
        now = timezone.now()
        order = _order_or_404(request, number, now)
        result = orders_unblock_dunning(order_ids=[order.id], user=None, now=now)
        if result.skipped.get(order.id) == BulkSkip.NOT_OPEN:
            return problem(409, "The order is paid or cancelled.")
        return Response(order_json(_order_or_404(request, number, now)))


def payment_json(payment: Payment) -> dict:
    order = payment.order
    return {
        "transaction_id": api_transaction_id(payment),
        "order_number": order.number if order else payment.reference,
        "amount": str(payment.amount),
        "currency": payment.currency,
        "booked_on": payment.booked_on.isoformat(),
        "matched": order is not None,
        "order_paid": bool(order and order.paid_at),
    }


class PaymentView(ApiView):
    @extend_schema(request=serializers.PaymentInSerializer,
                   parameters=RATE_LIMIT_PARAMETERS,
                   responses=responses({200: serializers.PaymentOutSerializer, 201: serializers.PaymentOutSerializer},
                                       400, 404, 413, 415,
                                       invalid=("The payment is invalid; nothing was recorded. See errors.",
                                                [{"field": "booked_on", "detail": "is in the future"}])),
                   summary="Record a payment of an order (idempotent by transaction_id)")
    def post(self, request):
        now = timezone.now()
        try:
            data = payment_input(request.data, now=now)
        except OrdersInvalid as exc:
            return problem(400, "The payment is invalid; nothing was recorded. See errors.",
                           errors=[e.as_dict() for e in exc.errors])
        try:
            result = payment_record_api(sales_account_id=request.user.sales_account.id, order_number=data.order_number,
                                        amount=data.amount, currency=data.currency, booked_on=data.booked_on,
                                        transaction_id=data.transaction_id, now=now)
        except OrderNotFound:
            raise exceptions.NotFound(f"No order {data.order_number!r}.") from None
        except PaymentActionError as exc:
            return problem(400, f"{exc} Nothing was recorded.", errors=[{"field": "currency", "detail": str(exc)}])
        payment = Payment.objects.select_related("order").get(pk=result.payment.pk)
        return Response(payment_json(payment), status=201 if result.created else 200)
