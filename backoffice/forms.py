import datetime
import re

from django import forms
from django.utils.formats import number_format
from django.utils.translation import gettext_lazy as _

from orders.validation import EARLIEST_DATE, control_character

# A bulk action on more orders than this asks for their number to be typed (server-side checked).
TYPE_COUNT_ABOVE = 500


class ActionForm(forms.Form):
    """A bulk action without options. With `confirm_count` (the number of selected orders, when
    more than TYPE_COUNT_ABOVE) the person must type that number to confirm."""

    def __init__(self, *args, today: datetime.date, confirm_count: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.today = today
        self.confirm_count = confirm_count
        if confirm_count is not None:
            shown = number_format(confirm_count, force_grouping=True)
            self.fields["confirm_count"] = forms.CharField(
                label=_("To confirm, type the number of orders (%(count)s)") % {"count": shown},
                max_length=20,
                widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off", "size": 10}),
            )

    def clean_confirm_count(self) -> int:
        typed = re.sub(r"[\s.,'’]", "", self.cleaned_data["confirm_count"])
        if typed != str(self.confirm_count):
            raise forms.ValidationError(
                _("Type %(count)s, the number of selected orders, to confirm.")
                % {"count": number_format(self.confirm_count, force_grouping=True)})
        return self.confirm_count


class MarkPaidForm(ActionForm):
    paid_on = forms.DateField(
        label=_("Payment received on"), widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )

    def __init__(self, *args, today: datetime.date, **kwargs) -> None:
        super().__init__(*args, today=today, **kwargs)
        self.fields["paid_on"].initial = today
        self.fields["paid_on"].widget.attrs["min"] = EARLIEST_DATE.isoformat()
        self.fields["paid_on"].widget.attrs["max"] = today.isoformat()

    def clean_paid_on(self) -> datetime.date:
        """Between 2000-01-01 and today; the orders placed after the day are skipped by the service
        (a selection spans many order dates)."""
        value = self.cleaned_data["paid_on"]
        if value > self.today:
            raise forms.ValidationError(_("The payment date cannot be in the future."))
        if value < EARLIEST_DATE:
            raise forms.ValidationError(
                _("The payment date cannot be before %(earliest)s.") % {"earliest": EARLIEST_DATE.isoformat()})
        return value


class BlockForm(ActionForm):
    reason = forms.CharField(
        label=_("Reason"),
        max_length=200,
        help_text=_("Shown on the order, e.g. “customer pays in instalments”."),
        widget=forms.TextInput(attrs={"size": 60, "autofocus": True}),
    )

    def clean_reason(self) -> str:
        value = self.cleaned_data["reason"].strip()
        if not value:
            raise forms.ValidationError(_("Please give a reason."))
        char = control_character(value)
        if char:
            raise forms.ValidationError(
                _("Contains a control character (%(char)s); only one line of text is allowed.") % {"char": char})
        return value


class CancelForm(ActionForm):
    release_reservation = forms.BooleanField(label=_("Release the stock reservation"), required=False, initial=True)


class PeriodForm(forms.Form):
    """The dashboard's period of reminders (sent from `start` to `end`, both included)."""

    start = forms.DateField(label=_("Reminders sent from"),
                            widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    end = forms.DateField(label=_("to"), widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and start < EARLIEST_DATE:
            self.add_error("start", _("The date cannot be before %(earliest)s.") % {
                "earliest": EARLIEST_DATE.isoformat()})
        if start and end and start > end:
            self.add_error("end", _("The end of the period cannot be before its start."))
        return cleaned
