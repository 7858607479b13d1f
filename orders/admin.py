from django.contrib import admin

from .models import Order, OrderEvent, PaymentMethod


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
    readonly_fields = ["action", "user", "at", "details"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
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
