"""Payments in: bank statements (camt.053, MT940) and the credits booked on them.

A `Payment` belongs to at most one order (`order` empty while unmatched). Its `source_id` is
unique: the bank's entry reference where the bank gives one, otherwise a stable hash of the
entry's fields, so importing the same entry again adds nothing. Returns and reversals are stored
(`kind=return`) for the record and never matched.

Splitting one credit over several orders of one customer makes **parts**: child payments
(`parent` = the credit split, `source_id` `split:<parent id>:<n>`), each on one order, amounts
adding up to the parent's. The parent keeps its bank `source_id` (a re-import stays a duplicate),
is marked `split_at` and belongs to no order, so everything that reads an order's payments
(`Order.outstanding`, the paid rule, the claim's `claim_payments_by_order`) sees the parts and
never the parent twice. Rejected: allocation rows next to `Payment.order` (every reader of an
order's payments would have had to read two tables). Undoing a split deletes the parts (their
audit rows keep them) and puts the parent back into the queue. `PaymentEvent` audits what staff do
to a payment that belongs to no order. The rules are in docs/rules/payments.md."""

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
    # a part of a credit split over several orders (the parent is marked split_at and has no order)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="parts",
                               verbose_name=_("part of"))
    split_at = models.DateTimeField(_("split at"), null=True, blank=True)
    split_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+", verbose_name=_("split by"))

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
            # a split credit is on no order itself (its parts are), and a part is always on one
            models.CheckConstraint(condition=Q(split_at__isnull=True)
                                   | Q(order__isnull=True, dismissed_at__isnull=True),
                                   name="payment_split_on_no_order"),
            models.CheckConstraint(condition=Q(parent__isnull=True) | Q(order__isnull=False, kind="credit"),
                                   name="payment_part_on_an_order"),
        ]
        indexes = [
            # the unmatched queue (and the dunning run's re-match): small, partial
            models.Index(fields=["booked_on", "id"], name="payment_unmatched_idx",
                         condition=Q(order__isnull=True, kind="credit", dismissed_at__isnull=True)),
        ]

    def __str__(self) -> str:
        return f"{self.amount} {self.currency} {self.booked_on}"


class PaymentEvent(models.Model):
    """Audit trail of staff's actions on a payment as such ("not an order payment" and back, split and
    its undo); what happens to an order is in its `OrderEvent`s. Written by
    `payments.services.payment_events_log` in the same transaction as the change."""

    class Action(models.TextChoices):
        DISMISSED = "dismissed", _("Marked as not an order payment")
        UNDISMISSED = "undismissed", _("Back in the unmatched queue")
        SPLIT = "split", _("Payment split over several orders")
        SPLIT_UNDONE = "split_undone", _("Split undone")

    payment = models.ForeignKey(Payment, on_delete=models.CASCADE, related_name="events",
                                verbose_name=_("payment"))
    action = models.CharField(_("action"), max_length=20, choices=Action.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+", verbose_name=_("user"))
    at = models.DateTimeField(_("at"))
    details = models.JSONField(_("details"), default=dict, blank=True)

    class Meta:
        verbose_name = _("payment event")
        verbose_name_plural = _("payment events")
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.payment_id} {self.action} {self.at:%Y-%m-%d %H:%M}"


UNMATCHED = Q(order__isnull=True, kind=Payment.Kind.CREDIT, dismissed_at__isnull=True, split_at__isnull=True)
