"""Admin of e-mail templates (placeholder list, live preview) and of reminders (the outbox)."""

from django import forms
from django.contrib import admin
from django.db import models
from django.http import HttpRequest

from common.admin import ReadOnlyAdminMixin

from .models import EmailTemplate, LetterTemplate, Reminder
from .templating import PLACEHOLDERS, CompiledTemplate, sample_context


class StaffTemplateAdmin(admin.ModelAdmin):
    """Templates staff write (e-mails, letters): the list, wide inputs and the placeholder list."""

    list_display = ["name", "language", "subject"]
    list_filter = ["language"]
    search_fields = ["name", "subject", "body"]
    change_form_template = "admin/dunning/emailtemplate/change_form.html"
    formfield_overrides = {models.CharField: {"widget": forms.TextInput(attrs={"size": 90})}}
    placeholders = PLACEHOLDERS

    def render_change_form(self, request: HttpRequest, context, add=False, change=False, form_url="", obj=None):
        context["placeholders"] = self.placeholders
        context["preview"] = self._preview(obj)
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    @staticmethod
    def _preview(obj) -> dict | None:
        return None


@admin.register(EmailTemplate)
class EmailTemplateAdmin(StaffTemplateAdmin):
    """Reminder e-mails, with a preview of the saved template rendered with the sample order."""

    @staticmethod
    def _preview(obj: EmailTemplate | None) -> dict | None:
        if obj is None or obj.pk is None:
            return None
        try:
            rendered = CompiledTemplate(obj).render(sample_context(obj.language))
        except Exception as exc:  # a template saved before validation existed
            return {"error": f"{type(exc).__name__}: {exc}"}
        return {"subject": rendered.subject, "body": rendered.body, "html_body": rendered.html_body}


@admin.register(LetterTemplate)
class LetterTemplateAdmin(StaffTemplateAdmin):
    """The text of PDF letters (the layout around it is fixed: dunning.letters). Validated on save
    like e-mail templates; the payment QR code is always printed on the letter (for EUR claims)."""

    placeholders = [p for p in PLACEHOLDERS if p.name != "payment_qr"]


@admin.register(Reminder)
class ReminderAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["order", "level", "trigger", "status", "recipient", "created_at", "sent_at", "sent_by"]
    list_filter = ["status", "level", "trigger"]
    search_fields = ["order__number", "recipient", "message_id"]
    list_select_related = ["order", "order__sales_account", "sent_by"]
    show_full_result_count = False
    readonly_fields = [f.name for f in Reminder._meta.fields]


