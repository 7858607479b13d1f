"""Shapes of the API's JSON, for the OpenAPI schema (drf-spectacular). Input is validated by the
importer's rules (api.services), not by these serializers; output is built by api.views.order_json."""

from rest_framework import serializers


class OrderInSerializer(serializers.Serializer):
    payment_method = serializers.CharField(help_text="payment method code, e.g. prepayment")
    customer_name = serializers.CharField()
    customer_email = serializers.CharField(required=False, allow_blank=True)
    language = serializers.CharField(required=False, allow_blank=True, help_text="de, en or empty")
    total = serializers.CharField(help_text='a string with a dot, e.g. "49.90"')
    currency = serializers.CharField(help_text="ISO 4217, e.g. EUR")
    ordered_at = serializers.CharField(help_text="ISO 8601 date or date-time")
    paid_at = serializers.CharField(required=False, allow_null=True)
    cancelled_at = serializers.CharField(required=False, allow_null=True)
    customer_is_business = serializers.BooleanField(required=False, allow_null=True,
                                                    help_text="true or false; absent or null: unchanged "
                                                              "(a new order: false)")
    customer_number = serializers.CharField(required=False, allow_blank=True, allow_null=True,
                                            help_text="the seller's customer number, printed on letters")
    customer_street = serializers.CharField(required=False, allow_blank=True, allow_null=True,
                                            help_text="postal address of letters: street and number")
    customer_postcode = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    customer_city = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    customer_country = serializers.CharField(required=False, allow_blank=True, allow_null=True,
                                             help_text="ISO 3166 alpha-2, e.g. DE; blank: the seller's country")


class BulkItemSerializer(OrderInSerializer):
    number = serializers.CharField()


class BulkInSerializer(serializers.Serializer):
    orders = BulkItemSerializer(many=True, help_text="at most 1,000; all or nothing")


class BulkOutSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()


class ReminderOutSerializer(serializers.Serializer):
    level = serializers.IntegerField()
    status = serializers.CharField()
    sent_at = serializers.DateTimeField(allow_null=True)


class OrderOutSerializer(OrderInSerializer):
    number = serializers.CharField()
    open = serializers.BooleanField()
    dunning_level = serializers.CharField(allow_null=True, help_text='1, 2, 3, "completed" or null')
    reminders_sent = serializers.IntegerField()
    last_reminder_at = serializers.DateTimeField(allow_null=True)
    dunning_blocked = serializers.BooleanField()
    dunning_block_reason = serializers.CharField()
    flagged_for_cancellation_at = serializers.DateTimeField(allow_null=True)
    reservation_released_at = serializers.DateTimeField(allow_null=True)
    outstanding = serializers.CharField()
    updated_at = serializers.DateTimeField()
    reminders = ReminderOutSerializer(many=True)


class BlockInSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=200)


class PaymentInSerializer(serializers.Serializer):
    order_number = serializers.CharField(help_text="an order of the key's sales account")
    amount = serializers.CharField(help_text='more than 0, a string with a dot, e.g. "49.90"')
    currency = serializers.CharField(help_text="ISO 4217, the order's currency")
    booked_on = serializers.DateField(help_text="ISO 8601 date, not in the future")
    transaction_id = serializers.CharField(max_length=100,
                                           help_text="unique per sales account: the same id again returns the first "
                                                     "result (200) and records nothing")


class PaymentOutSerializer(serializers.Serializer):
    transaction_id = serializers.CharField()
    order_number = serializers.CharField()
    amount = serializers.CharField()
    currency = serializers.CharField()
    booked_on = serializers.DateField()
    matched = serializers.BooleanField(help_text="false when the order was paid or cancelled: staff decide")
    order_paid = serializers.BooleanField()
