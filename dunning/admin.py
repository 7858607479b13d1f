import hashlib
from decimal import Decimal

from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets, unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Model
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import Truncator
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from common.admin import ReadOnlyAdminMixin

from . import activation
from .automation import automation_status, automation_update
from .models import (
    AutomationChange,
    BaseRate,
    DunningAutomation,
    DunningConfig,
    DunningRun,
    ReminderAssignment,
    TrackingEvent,
)
from .run_summary import run_summary
from .selectors import active_configs
from .tracking import provider_names

# POST keys of the confirmation page itself, never carried over as form data
_CONFIRMATION_KEYS = {"csrfmiddlewaretoken", "confirmed", "preview_of", "recalculate"}


class ConfirmWideningMixin:
    """Before saving a change that makes the job act on more orders at once, show a confirmation
    page with what the next run would do; only a second POST with the hidden `confirmed` field
    saves (docs/rules/sending.md "Activation safety"). Subclasses say why (`widening_reasons`) and what to
    show (`confirmation_context`)."""

    confirmation_template: str = ""
    date_field_on_confirmation: str | None = None

    def widening_reasons(self, old: Model | None, new: Model) -> list[str]:
        raise NotImplementedError

    def confirmation_context(self, request: HttpRequest, old: Model | None, new: Model, reasons: list[str]) -> dict:
        raise NotImplementedError

    def changeform_view(self, request: HttpRequest, object_id=None, form_url="", extra_context=None):
        if request.method == "POST":
            response = self._confirmation_response(request, object_id)
            if response is not None:
                return response
        return super().changeform_view(request, object_id, form_url, extra_context)

    @staticmethod
    def _fingerprint(obj: Model) -> str:
        """Identifies the values a preview was computed for (0 and 0.00 are the same amount)."""
        values = []
        for f in obj._meta.concrete_fields:
            if not f.primary_key:
                value = getattr(obj, f.attname)
                values.append((f.attname, str(value.normalize() if isinstance(value, Decimal) else value)))
        return hashlib.sha256(repr(values).encode()).hexdigest()[:32]

    def _confirmation_response(self, request: HttpRequest, object_id) -> HttpResponse | None:
        """None: go on with the normal save (or the normal error and permission handling)."""
        if "_saveasnew" in request.POST:
            object_id = None
        if object_id is None:
            if not self.has_add_permission(request):
                return None
            old, instance = None, self.model()
        else:
            old = self.get_object(request, unquote(object_id))
            if old is None or not self.has_change_permission(request, old):
                return None
            instance = self.get_object(request, unquote(object_id))
        fields = flatten_fieldsets(self.get_fieldsets(request, old))
        form_class = self.get_form(request, old, change=old is not None, fields=fields)
        form = form_class(request.POST, request.FILES, instance=instance)
        if not form.is_valid():
            return None
        new = form.instance
        reasons = self.widening_reasons(old, new)
        if not reasons:
            return None
        fingerprint = self._fingerprint(new)
        previewed = request.POST.get("preview_of", fingerprint)
        if request.POST.get("confirmed") == "1" and "recalculate" not in request.POST and previewed == fingerprint:
            return None
        hidden = [(key, value) for key, values in request.POST.lists() if key not in _CONFIRMATION_KEYS
                  and key != self.date_field_on_confirmation for value in values]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "title": gettext("Confirm: what the automatic job would do"),
            "object": new,
            "original": old,
            "hidden_fields": hidden,
            "fingerprint": fingerprint,
            "reasons": reasons,
            "recalculated": "confirmed" in request.POST,
            "now": timezone.now(),
            **self.confirmation_context(request, old, new, reasons),
        }
        return TemplateResponse(request, self.confirmation_template, context)


@admin.register(DunningConfig)
class DunningConfigAdmin(ConfirmWideningMixin, admin.ModelAdmin):
    list_display = ["sales_account", "payment_method", "is_active", "level_1_days", "level_2_days", "level_3_days",
                    "min_days_between_reminders", "minimum_amount", "only_orders_since", "cancel_after_days",
                    "cancellation_action"]
    list_filter = ["is_active", "sales_account", "payment_method"]
    list_select_related = ["sales_account", "payment_method"]
    confirmation_template = "admin/dunning/dunningconfig/activation_confirmation.html"
    date_field_on_confirmation = "only_orders_since"

    def widening_reasons(self, old, new) -> list[str]:
        return activation.config_widening_reasons(old, new)

    def confirmation_context(self, request, old, new, reasons) -> dict:
        preview = activation.activation_preview(new, now=timezone.now(), current=old, reasons=reasons)
        shows_cancellation = (new.payment_method.is_prepayment and new.cancel_after_days is not None) or bool(
            preview.cancellation_count)
        return {"preview": preview, "shows_cancellation": shows_cancellation,
                "only_orders_since": new.only_orders_since, "today": timezone.localdate()}


@admin.register(ReminderAssignment)
class ReminderAssignmentAdmin(ConfirmWideningMixin, admin.ModelAdmin):
    list_display = ["sales_account", "level", "template", "send_automatically", "letter_template", "attach_pdf"]
    list_filter = ["sales_account", "level", "send_automatically", "attach_pdf"]
    list_select_related = ["sales_account", "template", "letter_template"]
    confirmation_template = "admin/dunning/reminderassignment/automatic_confirmation.html"

    def widening_reasons(self, old, new) -> list[str]:
        return activation.assignment_widening_reasons(old, new)

    def confirmation_context(self, request, old, new, reasons) -> dict:
        preview = activation.assignment_preview(new, now=timezone.now(), reasons=reasons)
        rows = [(config, count, url, reverse("admin:dunning_dunningconfig_change", args=[config.pk]))
                for config, count, url in preview.rows]
        return {"preview": preview, "rows": rows}


@admin.register(DunningRun)
class DunningRunAdmin(admin.ModelAdmin):
    """Read-only. A run's page shows its details as tables (per sales account and level, with the
    skip reasons in words), its times in TIME_ZONE and its duration in seconds, never the stored JSON."""

    list_display = ["started_at", "trigger", "dry_run", "started_by", "sent", "failed", "skipped", "flagged",
                    "cancelled", "duration", "short_error"]
    list_filter = ["trigger", "dry_run"]
    list_select_related = ["started_by"]
    date_hierarchy = "started_at"
    show_full_result_count = False
    fields = readonly_fields = ["trigger", "dry_run", "started_by", "started_at", "finished_at", "duration", "sent",
                                "failed", "skipped", "flagged", "cancelled", "summary", "error_lines"]

    @admin.display(description=_("duration"), ordering="duration_ms")
    def duration(self, run: DunningRun) -> str:
        if run.duration_ms is None:
            return gettext("running") if run.finished_at is None else "—"
        return formats.number_format(run.duration_ms / 1000, 1, use_l10n=True) + " s"

    @admin.display(description=_("details"))
    def summary(self, run: DunningRun) -> str:
        return render_to_string("admin/dunning/dunningrun/summary.html", {"summary": run_summary(run)})

    @admin.display(description=_("error"))
    def error_lines(self, run: DunningRun) -> str:
        return format_html_join(mark_safe("<br>"), "{}", ((line,) for line in run.error.splitlines())) or "—"

    @admin.display(description=_("error"))
    def short_error(self, run: DunningRun) -> str:
        return Truncator(run.error).chars(120)

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
    """The singleton switch: its list redirects to its one change page, which shows the change
    history, the last runs, when the next run is due and whether one is in progress. Saving goes
    through `automation_update` (audit row in the same transaction)."""

    fields = ["enabled", "interval_minutes"]
    history_limit = 50
    runs_limit = 20

    def changelist_view(self, request: HttpRequest, extra_context=None):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        DunningAutomation.load()
        return HttpResponseRedirect(reverse("admin:dunning_dunningautomation_change", args=[1]))

    def get_object(self, request: HttpRequest, object_id, from_field=None):
        if str(object_id) == "1":
            DunningAutomation.load()
        return super().get_object(request, object_id, from_field)

    def change_view(self, request: HttpRequest, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        if self.has_view_or_change_permission(request):
            now = timezone.now()
            extra_context.update({
                "status": automation_status(now=now),
                "changes": AutomationChange.objects.select_related("changed_by")[:self.history_limit],
                "runs": DunningRun.objects.select_related("started_by")[:self.runs_limit],
                "runs_url": reverse("admin:dunning_dunningrun_changelist"),
                "now": now,
            })
        return super().change_view(request, object_id, form_url, extra_context)

    def changeform_view(self, request: HttpRequest, object_id=None, form_url="", extra_context=None):
        """Switching the job on, or shortening its interval, first shows what the first run would do
        at once (per active config: reminders per level sent automatically, prepayment orders
        flagged or cancelled); only the POST of "Yes, switch on" with `confirmed` saves."""
        if request.method == "POST" and request.POST.get("confirmed") != "1" and self.has_change_permission(request):
            response = self._activation_confirmation(request)
            if response is not None:
                return response
        return super().changeform_view(request, object_id, form_url, extra_context)

    def _activation_confirmation(self, request: HttpRequest) -> HttpResponse | None:
        old = DunningAutomation.load()
        form = self.get_form(request, old, change=True)(request.POST, instance=DunningAutomation.load())
        if not form.is_valid():
            return None  # the normal form errors
        new = form.instance
        switched_on = new.enabled and not old.enabled
        shortened = new.enabled and old.enabled and new.interval_minutes < old.interval_minutes
        if not (switched_on or shortened):
            return None
        now = timezone.now()
        previews = [activation.activation_preview(config, now=now) for config in active_configs()]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "title": gettext("Confirm: what the first run would do"),
            "switched_on": switched_on,
            "old": old,
            "new": new,
            "previews": previews,
            "reminders_at_once": sum(p.reminders_at_once for p in previews),
            "cancellations": sum(p.cancellation_count for p in previews),
            "team_notices": activation.team_notices_preview(previews),
            "hidden_fields": [(k, v) for k, values in request.POST.lists() if k not in _CONFIRMATION_KEYS
                              for v in values],
        }
        return TemplateResponse(request, "admin/dunning/dunningautomation/activation_confirmation.html", context)

    def save_model(self, request: HttpRequest, obj: DunningAutomation, form, change: bool) -> None:
        saved = automation_update(enabled=obj.enabled, interval_minutes=obj.interval_minutes, user=request.user,
                                  now=timezone.now())
        obj.changed_by, obj.changed_at = saved.changed_by, saved.changed_at

    def response_change(self, request: HttpRequest, obj: DunningAutomation) -> HttpResponse:
        n = obj.interval_minutes
        state = ngettext("on, every minute", "on, every %(n)s minutes", n) % {"n": n} if obj.enabled else gettext("off")
        self.message_user(request, gettext("Automatic dunning is %(state)s. It takes effect at the next tick.")
                          % {"state": state}, messages.SUCCESS)
        return HttpResponseRedirect(request.path)


@admin.register(BaseRate)
class BaseRateAdmin(admin.ModelAdmin):
    """The base rates default interest is computed from: support staff (superusers) add and correct
    them; back-office staff see them (view permission, granted by migration 0006)."""

    list_display = ["valid_from", "rate"]
    ordering = ["-valid_from"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.is_active and request.user.is_superuser


@admin.register(AutomationChange)
class AutomationChangeAdmin(SuperuserOnlyMixin, admin.ModelAdmin):
    list_display = ["changed_at", "changed_by", "old_value", "new_value"]
    list_select_related = ["changed_by"]

    @staticmethod
    def _describe(values: dict) -> str:
        if not values:
            return "—"
        state = gettext("on") if values.get("enabled") else gettext("off")
        return format_html("{}, {} min", state, values.get("interval_minutes", "?"))

    @admin.display(description=_("old value"))
    def old_value(self, change: AutomationChange) -> str:
        return self._describe(change.old)

    @admin.display(description=_("new value"))
    def new_value(self, change: AutomationChange) -> str:
        return self._describe(change.new)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # an audit row is never edited


class StaticChoicesFilter(admin.SimpleListFilter):
    """A filter on a plain text field with a known set of values: its choices cost no query (the
    default filter of such a field reads every distinct value of the table on each page)."""

    def choices_list(self) -> list[str]:
        raise NotImplementedError

    def lookups(self, request: HttpRequest, model_admin) -> list[tuple[str, str]]:
        return [(value, value) for value in self.choices_list()]

    def queryset(self, request: HttpRequest, queryset):
        return queryset.filter(**{self.parameter_name: self.value()}) if self.value() else queryset


class ProviderFilter(StaticChoicesFilter):
    title = _("provider")
    parameter_name = "provider"

    def choices_list(self) -> list[str]:
        return provider_names()


class EventTypeFilter(StaticChoicesFilter):
    title = _("event type")
    parameter_name = "event_type"

    def choices_list(self) -> list[str]:
        from anymail.signals import EventType

        return sorted(value for name, value in vars(EventType).items() if not name.startswith("_"))


@admin.register(TrackingEvent)
class TrackingEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """What the provider's tracking webhook reported and what it did to the reminder, read-only:
    visible with the view permission (the back-office group has it), never added, changed or
    deleted by hand. Search: a provider message id, exactly (with or without its angle brackets)."""

    list_display = ["received_at", "provider", "event_type", "outcome", "reminder_link", "message_id"]
    list_filter = ["outcome", ProviderFilter, EventTypeFilter]
    list_select_related = ["reminder", "reminder__order"]
    search_fields = ["message_id"]
    search_help_text = _("A provider message id, exactly.")
    show_full_result_count = False
    fields = ["provider", "event_type", "outcome", "reminder", "message_id", "event_id", "occurred_at",
              "received_at", "description", "metadata"]
    readonly_fields = fields

    @admin.display(description=_("reminder"), ordering="reminder")
    def reminder_link(self, event: TrackingEvent) -> str:
        if event.reminder_id is None:
            return "—"
        return format_html('<a href="{}">{}</a>', reverse("admin:dunning_reminder_change", args=[event.reminder_id]),
                           event.reminder)

    def get_search_results(self, request: HttpRequest, queryset, search_term: str):
        """An exact match on the indexed message id, not the default scan for a substring."""
        term = search_term.strip()
        if not term:
            return queryset, False
        bare = term.removeprefix("<").removesuffix(">")
        return queryset.filter(message_id__in=[bare, f"<{bare}>"]), False


from . import admin_templates  # noqa: E402,F401  (EmailTemplate and Reminder admin)
