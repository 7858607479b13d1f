"""Admin: support staff create endpoints (the secret is shown once, on the page after saving) and
see every delivery with its last status code and duration, read-only, with "redeliver"."""

from django.contrib import admin, messages
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from common.admin import ReadOnlyAdminMixin
from common.formats import grouped

from .models import WebhookDelivery, WebhookEndpoint
from .services import deliveries_redeliver


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ("url", "sales_account", "events", "is_active", "created_at")
    list_filter = ("is_active", "sales_account")
    fields = ("sales_account", "url", "events", "is_active")

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "url":
            kwargs["assume_scheme"] = "https"
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change:
            messages.warning(request, _("Signing secret (shown only now, copy it to the receiver): %(secret)s")
                             % {"secret": obj.secret})


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("event", "event_type", "endpoint", "status", "attempts", "last_status_code", "last_duration_ms",
                    "last_attempt_at", "next_attempt_at")
    list_filter = ("status", "event__type")
    list_select_related = ("event", "endpoint", "endpoint__sales_account")
    search_fields = ("event__id",)
    actions = ["redeliver"]

    def has_redeliver_permission(self, request) -> bool:
        return request.user.has_perm("webhooks.change_webhookendpoint")

    @admin.display(description=_("type"))
    def event_type(self, obj: WebhookDelivery) -> str:
        return obj.event.type

    @admin.action(description=_("Redeliver the selected deliveries"), permissions=["redeliver"])
    def redeliver(self, request, queryset):
        count = deliveries_redeliver(delivery_ids=queryset.values_list("id", flat=True), now=timezone.now())
        self.message_user(request, _("%(count)s deliveries queued again.") % {"count": grouped(count)})
