from django.contrib import admin, messages
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from common.formats import grouped

from .models import ApiKey, SalesAccount
from .services import api_key_create, api_keys_revoke


@admin.register(SalesAccount)
class SalesAccountAdmin(admin.ModelAdmin):
    list_display = ["name", "channel", "sender_email", "team_email", "language", "is_active", "letters_ready"]
    list_filter = ["channel", "language", "is_active"]
    search_fields = ["name", "sender_email"]
    readonly_fields = ["letter_problems"]
    fieldsets = [
        (None, {"fields": ["name", "channel", "sender_email", "reply_to_email", "team_email", "language",
                           "payment_instructions", "payment_tolerance", "is_active"]}),
        (_("Letters and payment QR code"), {
            "fields": ["letter_problems", "company_name", "street", "postcode", "city", "country", "iban", "bic",
                       "account_holder", "logo", "legal_details"],
            "description": _("The creditor on PDF letters and in the payment QR code (GiroCode). Missing data "
                             "does not stop e-mail reminders; the letters then say what is missing."),
        }),
    ]

    @admin.display(description=_("letters ready"), boolean=True)
    def letters_ready(self, obj: SalesAccount) -> bool:
        return not obj.letter_problems()

    @admin.display(description=_("missing for letters"))
    def letter_problems(self, obj: SalesAccount) -> str:
        problems = obj.letter_problems() if obj.pk else []
        return ", ".join(problems) if problems else "–"


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Support staff create keys here; the key is shown once, in the message after saving. Keys are
    revoked, not edited."""

    list_display = ["prefix", "name", "sales_account", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["sales_account"]
    fields = ["sales_account", "name"]
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        return ["sales_account", "name"] if obj is None else ["sales_account", "name", *self.readonly_fields]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else ["sales_account", *self.readonly_fields]

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["name"])
            return
        row, key = api_key_create(sales_account=obj.sales_account, name=obj.name)
        obj.pk, obj.prefix, obj.key_hash = row.pk, row.prefix, row.key_hash
        messages.warning(request, _("API key (shown only now, store it): %(key)s") % {"key": key})

    @admin.action(description=_("Revoke the selected keys"), permissions=["change"])
    def revoke(self, request, queryset):
        count = api_keys_revoke(key_ids=queryset.values_list("id", flat=True), now=timezone.now())
        self.message_user(request, _("%(count)s keys revoked.") % {"count": grouped(count)})
