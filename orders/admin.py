import copy

from django import forms
from django.contrib import admin
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import services
from .audit import order_event_label, order_event_sentence
from .models import Order, OrderEvent, PaymentMethod
from .validation import order_problems


@admin.register(PaymentMethod)
class PaymentMethodAdmin(admin.ModelAdmin):
    list_display = ["name", "code", "is_prepayment", "payment_term_days"]
    list_filter = ["is_prepayment"]
    search_fields = ["name", "code"]
    prepopulated_fields = {"code": ["name"]}


class OrderEventInline(admin.TabularInline):
    model = OrderEvent
    extra = 0
    can_delete = False
    fields = readonly_fields = ["at", "what", "user", "sentence"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description=_("action"))
    def what(self, event: OrderEvent) -> str:
        return order_event_label(event.action)

    @admin.display(description=_("details"))
    def sentence(self, event: OrderEvent) -> str:
        return order_event_sentence(event.action, event.details, currency=event.order.currency)


class OrderAdminForm(forms.ModelForm):
    """Refuses what orders.validation refuses (dates out of range, paid and cancelled at once, a
    block without reason, ...) as form errors, before the save service would."""

    class Meta:
        model = Order
        fields = ["sales_account", "payment_method", "number", "customer_name", "customer_email", "language", "total",
                  "currency", "ordered_at", "paid_at", "cancelled_at", "dunning_blocked", "dunning_block_reason",
                  "flagged_for_cancellation_at", "reservation_released_at"]

    def clean(self):
        cleaned = super().clean()
        probe = copy.copy(self.instance)  # the order as it would be saved, without touching the instance
        for name, value in cleaned.items():
            setattr(probe, name, value)
        for name, messages in order_problems(probe, now=timezone.now()).items():
            self.add_error(name if name in self.fields else None, messages)
        return cleaned


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    form = OrderAdminForm
    list_display = ["number", "sales_account", "payment_method", "customer_name", "total", "currency",
                    "ordered_at", "paid_at", "cancelled_at", "reminders_sent", "dunning_blocked"]
    list_filter = ["sales_account", "payment_method", "dunning_blocked", "reminders_sent"]
    search_fields = ["number", "customer_name", "customer_email"]
    list_select_related = ["sales_account", "payment_method"]
    date_hierarchy = "ordered_at"
    show_full_result_count = False
    raw_id_fields = []
    readonly_fields = ["reminders_sent", "last_reminder_at"]
    inlines = [OrderEventInline]

    def save_model(self, request, obj: Order, form, change: bool) -> None:
        """Through the service: the consistency rules again, under the row lock, and the audit row."""
        services.order_save_edit(order=obj, fields=form.changed_data if change else None, user=request.user,
                                 now=timezone.now())
