"""Shapes of the API's JSON, for the OpenAPI schema (drf-spectacular). Input is validated by the
importer's rules (api.services), not by these serializers; output is built by api.views.order_json.
What the schema says is checked against what the API answers (tests/api/test_api_schema.py): every
status an operation answers is documented, every body matches its schema, and an input the schema
allows is refused only for what a schema cannot say (an unknown payment method code, a currency
outside ISO 4217, a date in the future, another currency than the order's)."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import Language
from dunning.models import Reminder
from orders.models import Order
from payments.services import MAX_TRANSACTION_ID

# Values are stripped of surrounding blanks before they are checked, so the patterns admit them.
FILLED = r"\S"  # a required text: at least one character that is not a blank
AMOUNT = r"^\s*\d{1,10}(\.\d{1,2})?\s*$"
CURRENCY = r"^\s*[A-Za-z]{3}\s*$"
DATE_OR_TIME = r"^\s*\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
OPTIONAL_DATE_OR_TIME = r"^\s*(\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01]).*)?$"
# One line of text with at least one character that is not a blank (control characters and line
# breaks are refused, as orders.validation.control_character does for the categories Cc).
ONE_LINE = r"^[^\u0000-\u001f\u007f-\u009f\u2028\u2029]*[^\s\u0000-\u001f\u007f-\u009f\u2028\u2029]" \
           r"[^\u0000-\u001f\u007f-\u009f\u2028\u2029]*$"
LANGUAGE = (r"^\s*(" + "|".join("".join(f"[{c.lower()}{c.upper()}]" for c in code) for code in Language.values)
            + r")?\s*$")
COUNTRY = r"^\s*([A-Za-z]{2})?\s*$"
MONEY_OUT = r"^\d+\.\d{2}$"
# Patterns that admit the empty string stand without allow_blank: drf-spectacular would add a
# second "or empty" branch to a oneOf, and "" would then match both.


def _max(field: str) -> int:
    return Order._meta.get_field(field).max_length


def _optional_text(**kwargs) -> serializers.CharField:
    return serializers.CharField(required=False, allow_blank=True, allow_null=True, **kwargs)


class OrderInSerializer(serializers.Serializer):
    number = serializers.CharField(required=False, help_text="optional: if given, the number in the URL")
    payment_method = serializers.RegexField(FILLED, help_text="payment method code, e.g. prepayment")
    customer_name = serializers.RegexField(FILLED, max_length=_max("customer_name"))
    customer_email = _optional_text(max_length=254, help_text="an e-mail address or empty")
    language = serializers.RegexField(LANGUAGE, required=False, allow_null=True,
                                      help_text=f"{', '.join(Language.values)} or empty (the account's)")
    total = serializers.RegexField(AMOUNT, help_text='a string with a dot and at most 2 decimals, e.g. "49.90"')
    currency = serializers.RegexField(CURRENCY, help_text="ISO 4217, e.g. EUR")
    ordered_at = serializers.RegexField(DATE_OR_TIME, help_text="ISO 8601 date or date-time (no offset: Berlin time), "
                                                                "not in the future")
    paid_at = serializers.RegexField(OPTIONAL_DATE_OR_TIME, required=False, allow_null=True,
                                     help_text="ISO 8601 date or date-time; empty or null never clears a stored one")
    cancelled_at = serializers.RegexField(OPTIONAL_DATE_OR_TIME, required=False, allow_null=True,
                                          help_text="ISO 8601 date or date-time; empty or null never clears a "
                                                    "stored one")
    customer_is_business = serializers.BooleanField(required=False, allow_null=True,
                                                    help_text="true or false; absent or null: unchanged "
                                                              "(a new order: false)")
    customer_number = _optional_text(max_length=_max("customer_number"),
                                     help_text="the seller's customer number, printed on letters")
    customer_street = _optional_text(max_length=_max("customer_street"),
                                     help_text="postal address of letters: street and number")
    customer_postcode = _optional_text(max_length=_max("customer_postcode"))
    customer_city = _optional_text(max_length=_max("customer_city"))
    customer_country = serializers.RegexField(COUNTRY, required=False, allow_null=True,
                                              help_text="ISO 3166 alpha-2, e.g. DE; blank: the seller's country")


class BulkItemSerializer(OrderInSerializer):
    number = serializers.RegexField(FILLED, max_length=_max("number"))


class BulkInSerializer(serializers.Serializer):
    orders = BulkItemSerializer(many=True, max_length=1000, help_text="at most 1,000; all or nothing")


class BulkOutSerializer(serializers.Serializer):
    created = serializers.IntegerField(min_value=0)
    updated = serializers.IntegerField(min_value=0)
    unchanged = serializers.IntegerField(min_value=0)


class ReminderOutSerializer(serializers.Serializer):
    level = serializers.ChoiceField(choices=[1, 2, 3])
    status = serializers.ChoiceField(choices=Reminder.Status.values)
    sent_at = serializers.DateTimeField(allow_null=True)


@extend_schema_field({"oneOf": [{"type": "integer", "enum": [1, 2, 3]}, {"type": "string", "enum": ["completed"]},
                                {"type": "null"}],
                      "description": '1, 2, 3, "completed" or null (not due for a reminder)'})
class DunningLevelField(serializers.Field):
    pass


class OrderOutSerializer(serializers.Serializer):
    number = serializers.CharField()
    payment_method = serializers.CharField(help_text="payment method code")
    customer_name = serializers.CharField()
    customer_email = serializers.CharField(allow_blank=True)
    language = serializers.RegexField(rf"^({'|'.join(Language.values)})?$", help_text="empty: the account's")
    total = serializers.RegexField(MONEY_OUT)
    currency = serializers.RegexField(r"^[A-Z]{3}$")
    ordered_at = serializers.DateTimeField()
    paid_at = serializers.DateTimeField(allow_null=True)
    cancelled_at = serializers.DateTimeField(allow_null=True)
    customer_is_business = serializers.BooleanField()
    customer_number = serializers.CharField(allow_blank=True)
    customer_street = serializers.CharField(allow_blank=True)
    customer_postcode = serializers.CharField(allow_blank=True)
    customer_city = serializers.CharField(allow_blank=True)
    customer_country = serializers.RegexField(r"^([A-Z]{2})?$", help_text="empty: the seller's")
    open = serializers.BooleanField()
    dunning_level = DunningLevelField()
    reminders_sent = serializers.IntegerField(min_value=0)
    last_reminder_at = serializers.DateTimeField(allow_null=True)
    dunning_blocked = serializers.BooleanField()
    dunning_block_reason = serializers.CharField(allow_blank=True)
    flagged_for_cancellation_at = serializers.DateTimeField(allow_null=True)
    reservation_released_at = serializers.DateTimeField(allow_null=True)
    outstanding = serializers.RegexField(MONEY_OUT, help_text="the total while unpaid, 0.00 once paid")
    updated_at = serializers.DateTimeField()
    reminders = ReminderOutSerializer(many=True)


class OrderPageSerializer(serializers.Serializer):
    next = serializers.URLField(allow_null=True, help_text="the next page, or null on the last one")
    previous = serializers.URLField(allow_null=True, help_text="the page before, or null on the first one")
    results = OrderOutSerializer(many=True)


class BlockInSerializer(serializers.Serializer):
    reason = serializers.RegexField(ONE_LINE, max_length=200, help_text="one line of text, 1 to 200 characters")


class PaymentInSerializer(serializers.Serializer):
    order_number = serializers.RegexField(FILLED, max_length=_max("number"),
                                          help_text="an order of the key's sales account")
    amount = serializers.RegexField(AMOUNT, help_text='more than 0, a string with a dot, e.g. "49.90"')
    currency = serializers.RegexField(CURRENCY, help_text="ISO 4217, the order's currency")
    booked_on = serializers.DateField(help_text="ISO 8601 date, from 2000-01-01 to today")
    transaction_id = serializers.RegexField(FILLED, max_length=MAX_TRANSACTION_ID,
                                            help_text="unique per sales account: the same id again returns the first "
                                                      "result (200) and records nothing")


class PaymentOutSerializer(serializers.Serializer):
    transaction_id = serializers.CharField()
    order_number = serializers.CharField()
    amount = serializers.RegexField(MONEY_OUT)
    currency = serializers.RegexField(r"^[A-Z]{3}$")
    booked_on = serializers.DateField()
    matched = serializers.BooleanField(help_text="false when the order was paid or cancelled: staff decide")
    order_paid = serializers.BooleanField()


class ProblemErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    pointer = serializers.CharField(required=False, help_text="JSON pointer into the query or body, e.g. /cursor")
    field = serializers.CharField(required=False, help_text="the field of the order or payment")
    index = serializers.IntegerField(required=False, min_value=0, help_text="the item of a bulk request")


class ProblemSerializer(serializers.Serializer):
    """RFC 9457 problem document (application/problem+json)."""

    type = serializers.CharField()
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField(allow_blank=True)
    errors = ProblemErrorSerializer(many=True, required=False)

