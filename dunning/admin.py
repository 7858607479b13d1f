from django.contrib import admin
from django.http import HttpRequest

from .models import (
    AutomationChange,
    DunningAutomation,
    DunningConfig,
    DunningRun,
    ReminderAssignment,
)


@admin.register(DunningConfig)
class DunningConfigAdmin(admin.ModelAdmin):
    list_display = ["sales_account", "payment_method", "is_active", "level_1_days", "level_2_days", "level_3_days",
                    "min_days_between_reminders", "minimum_amount", "only_orders_since", "cancel_after_days",
                    "cancellation_action"]
    list_filter = ["is_active", "sales_account", "payment_method"]
    list_select_related = ["sales_account", "payment_method"]


@admin.register(ReminderAssignment)
class ReminderAssignmentAdmin(admin.ModelAdmin):
    list_display = ["sales_account", "level", "template", "send_automatically"]
    list_filter = ["sales_account", "level", "send_automatically"]
    list_select_related = ["sales_account", "template"]


@admin.register(DunningRun)
class DunningRunAdmin(admin.ModelAdmin):
    list_display = ["started_at", "trigger", "dry_run", "sent", "failed", "skipped", "flagged", "cancelled",
                    "duration_ms", "error"]
    list_filter = ["trigger", "dry_run"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class SuperuserOnlyMixin:
    """Visible and editable for support staff (superusers) only: others get 403 and no index entry."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(DunningAutomation)
class DunningAutomationAdmin(SuperuserOnlyMixin, admin.ModelAdmin):
    list_display = ["__str__", "enabled", "interval_minutes", "changed_by", "changed_at", "last_scheduled_run_at"]
    fields = ["enabled", "interval_minutes"]

    def changelist_view(self, request: HttpRequest, extra_context=None):
        DunningAutomation.load()
        return super().changelist_view(request, extra_context)


@admin.register(AutomationChange)
class AutomationChangeAdmin(SuperuserOnlyMixin, admin.ModelAdmin):
    list_display = ["changed_at", "changed_by", "old", "new"]


from . import admin_templates  # noqa: E402,F401  (EmailTemplate and Reminder admin)
