"""The webhook events in the OpenAPI schema (its `webhooks` section, OpenAPI 3.1): one entry per
event type with the body we POST, so a receiver can generate its handler's types from the same
schema as its API client. The bodies are what `webhooks.models.WebhookEvent.payload` sends; the
data of each type is written by the service that emits it (orders.services, dunning.services,
payments.services). tests/api/test_api_schema.py produces every type through those services and
validates the bodies against this schema."""

from drf_spectacular.utils import OpenApiResponse, OpenApiWebhook, extend_schema
from rest_framework import serializers

from dunning.models import Reminder
from webhooks.models import EventType

from .serializers import MONEY_OUT

_RECEIVER = (
    "Headers (Standard Webhooks): `webhook-id` (the event's id, the same on every attempt: use it to drop "
    "a repeat), `webhook-timestamp` (Unix seconds of this attempt) and `webhook-signature` = `v1,` + "
    "base64(HMAC-SHA256(base64-decoded secret after `whsec_`, \"{id}.{timestamp}.{body}\")); the "
    "`standardwebhooks` libraries verify it. Answer 2xx within WEBHOOK_TIMEOUT_SECONDS (default 5): "
    "anything else, a redirect or a timeout is tried again after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and "
    "10 h, then the delivery is failed (staff can send it again from the admin). Events of one order "
    "may arrive out of order after a retry: compare their `created_at`."
)


class _Data(serializers.Serializer):
    order_number = serializers.CharField(help_text="the order's number (for payment.unmatched: the first order named)")
    sales_account = serializers.CharField(help_text="the sales account's name")


class ReminderSentData(_Data):
    level = serializers.ChoiceField(choices=[1, 2, 3])
    trigger = serializers.ChoiceField(choices=Reminder.Trigger.values)
    sent_at = serializers.DateTimeField()


class OrderPaidData(_Data):
    paid_at = serializers.DateTimeField()


class OrderFlaggedData(_Data):
    flagged_at = serializers.DateTimeField()


class OrderCancelledData(_Data):
    cancelled_at = serializers.DateTimeField()
    release_reservation = serializers.BooleanField(help_text="true: release the reserved stock")


class PaymentUnmatchedData(_Data):
    order_numbers = serializers.ListField(child=serializers.CharField(), min_length=1,
                                          help_text="every order of the account the payment's texts name")
    amount = serializers.RegexField(MONEY_OUT)
    currency = serializers.RegexField(r"^[A-Z]{3}$")
    booked_on = serializers.DateField()
    reference = serializers.CharField(allow_blank=True, help_text="the payment's reference text")


DATA = {
    EventType.REMINDER_SENT: (ReminderSentData, "A reminder went out (one event per reminder)."),
    EventType.ORDER_PAID: (OrderPaidData, "An order was paid: marked by staff, by a bank payment or through the API."),
    EventType.ORDER_FLAGGED_FOR_CANCELLATION: (OrderFlaggedData,
                                               "An unpaid prepayment order was flagged for cancellation."),
    EventType.ORDER_CANCELLED: (OrderCancelledData, "An order was cancelled, by the job or by staff."),
    EventType.PAYMENT_UNMATCHED: (PaymentUnmatchedData,
                                  "A payment could not be matched to an open order: staff decide. Sent to the account "
                                  "of the orders its texts name when they all belong to one account."),
}


def _event_serializer(event_type: EventType, data: type[serializers.Serializer]) -> type[serializers.Serializer]:
    """The body of one event type: {"id", "type", "created_at", "data"} (a component named after it)."""
    name = "".join(part.capitalize() for part in event_type.value.replace(".", "_").split("_")) + "Event"
    fields = {
        "id": serializers.RegexField(r"^msg_[0-9a-f]{32}$", help_text="the same on every attempt; = webhook-id"),
        "type": serializers.ChoiceField(choices=[event_type.value]),
        "created_at": serializers.DateTimeField(),
        "data": data(),
        "__module__": __name__,
    }
    return type(name, (serializers.Serializer,), fields)


def _webhook(event_type: EventType) -> OpenApiWebhook:
    data, summary = DATA[event_type]
    return OpenApiWebhook(
        name=event_type.value,
        decorator=extend_schema(
            summary=summary,
            description=_RECEIVER,
            request={"application/json": _event_serializer(event_type, data)},
            responses={"2XX": OpenApiResponse(description="received; anything else is tried again")},
        ),
    )


# drf-spectacular's WEBHOOKS setting names each one (config/settings.py)
REMINDER_SENT = _webhook(EventType.REMINDER_SENT)
ORDER_PAID = _webhook(EventType.ORDER_PAID)
ORDER_FLAGGED_FOR_CANCELLATION = _webhook(EventType.ORDER_FLAGGED_FOR_CANCELLATION)
ORDER_CANCELLED = _webhook(EventType.ORDER_CANCELLED)
PAYMENT_UNMATCHED = _webhook(EventType.PAYMENT_UNMATCHED)
