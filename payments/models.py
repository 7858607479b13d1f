"""Payments in: bank statements (camt.053, MT940) and the credits booked on them.

A `Payment` belongs to at most one order (`order` empty while unmatched). Its `source_id` is
unique: the bank's entry reference where the bank gives one, otherwise a stable hash of the
entry's fields, so importing the same entry again adds nothing. Returns and reversals are stored
(`kind=return`) for the record and never matched. The rules are in docs/rules/payments.md."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from orders.models import Order


class BankStatement(models.Model):
    """One imported file (a ZIP's member files are one statement each)."""

    class Format(models.TextChoices):
        CAMT053 = "camt053", "camt.053"
        MT940 = "mt940", "MT940"

    file_name = models.CharField(_("file name"), max_length=255)
    format = models.CharField(_("format"), max_length=10, choices=Format.choices)
    sha256 = models.CharField(_("SHA-256"), max_length=64, unique=True)
    account_iban = models.CharField(_("account IBAN"), max_length=34, blank=True)
    period_from = models.DateField(_("from"), null=True, blank=True)
    period_to = models.DateField(_("to"), null=True, blank=True)
    imported_at = models.DateTimeField(_("imported at"))
    imported_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    verbose_name=_("imported by"))
    entries = models.PositiveIntegerField(_("entries"), default=0)
    payments = models.PositiveIntegerField(_("payments"), default=0)
    matched = models.PositiveIntegerField(_("matched"), default=0)
    unmatched = models.PositiveIntegerField(_("unmatched"), default=0)
    duplicates = models.PositiveIntegerField(_("duplicates"), default=0)
    ignored = models.PositiveIntegerField(_("ignored"), default=0)

    class Meta:
        verbose_name = _("bank statement")
        verbose_name_plural = _("bank statements")
        ordering = ["-imported_at", "-id"]
        constraints = [
            # A different file for the same account and period is refused (a statement imported twice
            # under another name, or a corrected one that needs a look by hand).
            models.UniqueConstraint(fields=["account_iban", "period_from", "period_to"],
                                    condition=Q(period_from__isnull=False, period_to__isnull=False),
                                    name="bankstatement_account_period_unique"),
        ]

    def __str__(self) -> str:
        return self.file_name


class Payment(models.Model):
    class Kind(models.TextChoices):
        CREDIT = "credit", _("Credit")
        RETURN = "return", _("Return or reversal")

    class MatchedBy(models.TextChoices):
        AUTO = "auto", _("Automatic")
        MANUAL = "manual", _("By hand")
        API = "api", _("API")

    statement = models.ForeignKey(BankStatement, null=True, blank=True, on_delete=models.PROTECT,
                                  related_name="payment_set", verbose_name=_("statement"))
    order = models.ForeignKey(Order, null=True, blank=True, on_delete=models.PROTECT, related_name="payments",
                              verbose_name=_("order"))
    amount = models.DecimalField(_("amount"), max_digits=12, decimal_places=2)
    currency = models.CharField(_("currency"), max_length=3)
    booked_on = models.DateField(_("booked on"))
    reference = models.TextField(_("reference"), blank=True)
    end_to_end_id = models.CharField(_("end-to-end ID"), max_length=64, blank=True)
    counterparty_name = models.CharField(_("counterparty"), max_length=140, blank=True)
    counterparty_iban = models.CharField(_("counterparty IBAN"), max_length=34, blank=True)
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices, default=Kind.CREDIT)
    matched_by = models.CharField(_("matched by"), max_length=10, choices=MatchedBy.choices, blank=True)
    matched_at = models.DateTimeField(_("matched at"), null=True, blank=True)
    source_id = models.CharField(_("source ID"), max_length=200, unique=True)
    # taken off an order by staff: the automatic matching leaves it to them from then on
    no_auto_match = models.BooleanField(_("no automatic matching"), default=False)
    # staff's "not an order payment": out of the unmatched queue, kept for the record
    dismissed_at = models.DateTimeField(_("not an order payment since"), null=True, blank=True)
    dismissed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+", verbose_name=_("dismissed by"))

    class Meta:
        verbose_name = _("payment")
        verbose_name_plural = _("payments")
        ordering = ["-booked_on", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive"),
            models.CheckConstraint(condition=Q(order__isnull=True) | Q(kind="credit"),
                                   name="payment_return_never_matched"),
            models.CheckConstraint(condition=Q(order__isnull=True) | Q(dismissed_at__isnull=True),
                                   name="payment_matched_or_dismissed"),
        ]
        indexes = [
            # the unmatched queue (and the dunning run's re-match): small, partial
            models.Index(fields=["booked_on", "id"], name="payment_unmatched_idx",
                         condition=Q(order__isnull=True, kind="credit", dismissed_at__isnull=True)),
        ]

    def __str__(self) -> str:
        return f"{self.amount} {self.currency} {self.booked_on}"


UNMATCHED = Q(order__isnull=True, kind=Payment.Kind.CREDIT, dismissed_at__isnull=True)
