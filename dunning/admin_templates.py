"""Admin of e-mail templates (placeholder list, preview) and of reminders (the outbox)."""

from django.contrib import admin
from django.http import HttpRequest

from .models import EmailTemplate, Reminder


@admin.register(EmailTemplate)
class EmailTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "language", "subject"]
    list_filter = ["language"]
    search_fields = ["name", "subject", "body"]



@admin.register(Reminder)
class ReminderAdmin(admin.ModelAdmin):
    list_display = ["order", "level", "trigger", "status", "recipient", "created_at", "sent_at", "sent_by"]
    list_filter = ["status", "level", "trigger"]
    search_fields = ["order__number", "recipient", "message_id"]
    list_select_related = ["order", "order__sales_account", "sent_by"]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
