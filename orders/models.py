import datetime
from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now, Upper
from django.utils.translation import gettext_lazy as _

from accounts.models import Language, SalesAccount
from common.dates import end_of_day, local_date, local_midnight

OPEN = Q(paid_at__isnull=True, cancelled_at__isnull=True)


class PaymentMethod(models.Model):
    code = models.SlugField(_("code"), max_length=40, unique=True)
    name = models.CharField(_("name"), max_length=100)
    is_prepayment = models.BooleanField(_("prepayment"), default=False)
    payment_term_days = models.PositiveSmallIntegerField(
        _("payment term (days)"), default=0, help_text=_("0 for prepayment.")
    )

    class Meta:
        verbose_name = _("payment method")
        verbose_name_plural = _("payment methods")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Order(models.Model):
    sales_account = models.ForeignKey(
        SalesAccount, on_delete=models.PROTECT, related_name="orders", verbose_name=_("sales account")
    )
    payment_method = models.ForeignKey(
        PaymentMethod, on_delete=models.PROTECT, related_name="orders", verbose_name=_("payment method")
    )
    number = models.CharField(_("number"), max_length=64)
    customer_name = models.CharField(_("customer"), max_length=200)
    customer_email = models.EmailField(_("customer e-mail"), blank=True)
    language = models.CharField(
        _("language"), max_length=2, choices=Language.choices, blank=True, help_text=_("Blank: the account's.")
    )
    # The postal address of letters (docs/rules/letters.md); all optional: e-mail reminders need none.
    customer_number = models.CharField(_("customer number"), max_length=40, blank=True)
    customer_street = models.CharField(_("street and number"), max_length=200, blank=True)
    customer_postcode = models.CharField(_("postcode"), max_length=20, blank=True)
    customer_city = models.CharField(_("city"), max_length=100, blank=True)
    customer_country = models.CharField(
        _("country"), max_length=2, blank=True, validators=[RegexValidator(r"^[A-Z]{2}$")],
        help_text=_("ISO 3166 code, e.g. DE; blank: the seller's country (not printed)."))
    customer_is_business = models.BooleanField(
        _("business customer"), default=False,
        help_text=_("A business customer is in default from the day after the due date (§ 286 (3) BGB does "
                    "not apply), pays default interest at base rate + 9 points and may owe the 40 EUR flat "
                    "fee (§ 288 (5) BGB)."),
    )
    total = models.DecimalField(
        _("total"), max_digits=12, decimal_places=2, validators=[MinValueValidator(Decimal("0"))]
    )
    currency = models.CharField(
        _("currency"), max_length=3, default="EUR", validators=[RegexValidator(r"^[A-Z]{3}$")]
    )
    ordered_at = models.DateTimeField(_("ordered at"))
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)
    cancelled_at = models.DateTimeField(_("cancelled at"), null=True, blank=True)
    dunning_blocked = models.BooleanField(_("dunning blocked"), default=False)
    dunning_block_reason = models.CharField(_("block reason"), max_length=200, blank=True)
    reminders_sent = models.PositiveSmallIntegerField(_("sent reminders"), default=0)
    last_reminder_at = models.DateTimeField(_("last reminder"), null=True, blank=True)
    flagged_for_cancellation_at = models.DateTimeField(_("flagged for cancellation"), null=True, blank=True)
    reservation_released_at = models.DateTimeField(_("reservation released"), null=True, blank=True)
    # When the row was last written (the API's `updated_since`): auto_now for saves, and every
    # set-based UPDATE of a service sets it too (`touched()`).
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        ordering = ["-ordered_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["sales_account", "number"], name="order_number_unique_per_account"),
            models.CheckConstraint(condition=Q(reminders_sent__gte=0, reminders_sent__lte=3),
                                   name="order_reminders_sent_0_to_3"),
            models.CheckConstraint(condition=Q(reminders_sent=0) | Q(last_reminder_at__isnull=False),
                                   name="order_last_reminder_when_sent"),
            models.CheckConstraint(condition=Q(total__gte=0), name="order_total_not_negative"),
        ]
        indexes = [
            # The overview and the level rule look only at open orders: partial indexes keep them
            # small (about a tenth of all orders) and match each filter path.
            models.Index(fields=["sales_account", "payment_method", "reminders_sent", "ordered_at"],
                         condition=OPEN, name="order_open_level_idx"),
            # One level's orders, newest first: every config's part of a level has the same number
            # of reminders sent, so the rule becomes `reminders_sent = n AND <OR over configs>`. With
            # the columns the rule reads after the key (key columns: SQLite has no INCLUDE), a level
            # tab's count and a level page's ids are index-only scans of one range of this index.
            # `currency` last: the overview's counts and money per currency (backoffice.selectors.
            # level_totals) read only this index, never the table.
            models.Index(fields=["reminders_sent", "ordered_at", "id", "sales_account", "payment_method",
                                 "last_reminder_at", "total", "dunning_blocked", "currency"],
                         condition=OPEN, name="order_open_sent_date_idx"),
            models.Index(fields=["ordered_at"], condition=OPEN, name="order_open_date_idx"),
            # The dashboard's aging (dunning.reporting.receivables_aging) groups the open orders by
            # currency and account with their level, age bucket and flag: every column it reads is
            # in this index (paid_at and cancelled_at too: the level rule states OPEN), so on
            # PostgreSQL it is an index-only scan instead of a heap read of every open order,
            # scattered over the whole table. SQLite ignores INCLUDE.
            models.Index(fields=["currency", "sales_account"], condition=OPEN, name="order_open_aging_idx",
                         include=["id", "payment_method", "reminders_sent", "ordered_at", "last_reminder_at", "total",
                                  "dunning_blocked", "flagged_for_cancellation_at", "paid_at", "cancelled_at"]),
            models.Index(fields=["flagged_for_cancellation_at"], condition=OPEN, name="order_open_flagged_idx"),
            # Bank payments are matched by order number found in the remittance text, case-insensitively,
            # against open orders of every account (payments.matching): one index probe per candidate.
            # NOT partial: PostgreSQL keeps statistics of an index expression only for a full index;
            # with the partial one alone it guessed ~all rows for `UPPER(number) IN (3,000 values)` and
            # scanned the table (0.3 s per batch of 2,000 payments at 1M orders; 7 ms with this one).
            # It also serves the payment.unmatched lookup and the suggestions (orders in any state).
            models.Index(Upper("number"), name="order_number_upper_idx"),
            models.Index(fields=["sales_account", "updated_at", "id"], name="order_account_updated_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.number} ({self.sales_account})"

    @property
    def is_open(self) -> bool:
        return self.paid_at is None and self.cancelled_at is None

    @property
    def effective_language(self) -> str:
        return self.language or self.sales_account.language

    @property
    def due_date(self) -> datetime.date | None:
        """The local order date plus the payment term; None past the end of the calendar (an
        order date near 9999-12-31 stored before order dates were bounded)."""
        try:
            return local_date(self.ordered_at) + datetime.timedelta(days=self.payment_method.payment_term_days)
        except OverflowError:
            return None

    @property
    def outstanding(self) -> Decimal:
        """The total less what bank or API payments matched to it cover (never below zero; zero once
        paid or cancelled). A
        queryset may annotate `paid_amount` (payments.selectors.with_paid_amount) to save the query."""
        if self.paid_at is not None or self.cancelled_at is not None:
            return Decimal("0.00")
        paid = getattr(self, "paid_amount", None)
        if paid is None:
            paid = self.payments.filter(kind="credit").aggregate(s=models.Sum("amount"))["s"] or Decimal("0")
        return max(self.total - paid, Decimal("0.00"))

    def address_problems(self) -> list[str]:
        """What a letter to the customer lacks (docs/rules/letters.md): empty when it can be posted."""
        if not (self.customer_street and self.customer_postcode and self.customer_city):
            return [str(_("the customer's postal address (order)"))]
        return []

    def days_overdue(self, today: datetime.date) -> int | None:
        due = self.due_date
        return None if due is None else (today - due).days


def days_overdue_q(*, today: datetime.date, terms: dict[int, int], at_least: int | None = None,
                   at_most: int | None = None) -> Q:
    """Q for "days overdue today between `at_least` and `at_most`" (either bound open): the rule of
    `Order.days_overdue` (local order date + the payment term), as plain comparisons of `ordered_at`
    with local midnights, one part per payment term. `terms`: payment method id -> payment term days
    (`payment_terms()`); an order of a method not in it matches nothing.

    days overdue >= a  <=>  local order date <= today - a - term  <=>  ordered_at < end_of_day(that day)
    days overdue <= b  <=>  local order date >= today - b - term  <=>  ordered_at >= local_midnight(that day)"""
    by_term: dict[int, list[int]] = {}
    for method_id, term in terms.items():
        by_term.setdefault(term, []).append(method_id)
    q = Q(pk__in=[])
    for term, method_ids in sorted(by_term.items()):
        part = Q(payment_method_id__in=sorted(method_ids))
        if at_least is not None:
            part &= Q(ordered_at__lt=end_of_day(today - datetime.timedelta(days=at_least + term)))
        if at_most is not None:
            part &= Q(ordered_at__gte=local_midnight(today - datetime.timedelta(days=at_most + term)))
        q |= part
    return q


def payment_terms() -> dict[int, int]:
    """Payment method id -> payment term in days (one query; a handful of rows)."""
    return dict(PaymentMethod.objects.values_list("id", "payment_term_days"))


def touched() -> Now:
    """The value of `updated_at` in a set-based UPDATE (`.update(..., updated_at=touched())`): the
    database's clock, as auto_now would have set it on a save."""
    return Now()


class OrderEvent(models.Model):
    """Audit trail: one row per state change of an order, written in the same transaction by
    `orders.audit.order_events_log`. Every action is declared here once, with the sentence the
    order page shows for it."""

    class Action(models.TextChoices):
        # written by the CSV import
        IMPORTED = "imported", _("Imported")
        IMPORT_UPDATED = "import_updated", _("Updated by an import")
        # back-office staff
        MARKED_PAID = "marked_paid", _("Marked as paid")
        DUNNING_BLOCKED = "dunning_blocked", _("Dunning blocked")
        DUNNING_UNBLOCKED = "dunning_unblocked", _("Dunning unblocked")
        CANCELLED = "cancelled", _("Cancelled")
        CANCELLATION_FLAG_CLEARED = "cancellation_flag_cleared", _("Cancellation flag cleared")
        MARK_PAID_UNDONE = "mark_paid_undone", _("“Paid” mark undone: open again")
        EMAIL_CHANGED = "email_changed", _("Customer e-mail address corrected")
        REMINDER_MARKED_SENT = "reminder_marked_sent", _("In-flight reminder marked as sent")
        REMINDER_MARKED_FAILED = "reminder_marked_failed", _("In-flight reminder marked as failed")
        ADMIN_CREATED = "admin_created", _("Created in the admin")
        ADMIN_CHANGED = "admin_changed", _("Changed in the admin")
        # the dunning engine and the provider's delivery events
        REMINDER_SENT = "reminder_sent", _("Reminder sent")
        REMINDER_BOUNCED = "reminder_bounced", _("Reminder bounced")
        REMINDER_COMPLAINED = "reminder_complained", _("Reminder marked as spam by the customer")
        # bank statements and staff's payment assignments (payments app)
        PAYMENT_MATCHED = "payment_matched", _("Bank payment matched")
        PAYMENT_UNASSIGNED = "payment_unassigned", _("Bank payment unassigned")
        PAID_BY_BANK = "paid_by_bank", _("Paid (bank payments cover the total)")
        REOPENED_BY_UNASSIGN = "reopened_by_unassign", _("Reopened: payments no longer cover the total")
        PAYMENT_PART_ASSIGNED = "payment_part_assigned", _("Part of a split bank payment assigned")
        PAYMENT_SPLIT_UNDONE = "payment_split_undone", _("Split of a bank payment undone (part taken off)")
        AUTO_FLAG = "auto_flag", _("Flagged for cancellation (automatic)")
        AUTO_CANCEL = "auto_cancel", _("Cancelled (automatic)")
        AUTO_CANCEL_AND_RELEASE = "auto_cancel_and_release_reservation", _(
            "Cancelled and reservation released (automatic)")

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events")
    action = models.CharField(_("action"), max_length=40, choices=Action.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             verbose_name=_("user"))
    at = models.DateTimeField(_("at"))
    details = models.JSONField(_("details"), default=dict, blank=True)

    class Meta:
        verbose_name = _("order event")
        verbose_name_plural = _("order events")
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["order", "at"])]

    def __str__(self) -> str:
        return f"{self.order_id} {self.action} {self.at:%Y-%m-%d %H:%M}"


# --- the open orders' totals, kept by the database (orders/open_totals.py) --------------------------


class OpenTotalKey(models.Model):
    """What a bucket of open orders is keyed by: what the level rule and the overview's filters ask
    of an order besides "open" (orders.open_totals)."""

    sales_account_id = models.BigIntegerField()
    payment_method_id = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    dunning_blocked = models.BooleanField()
    reminders_sent = models.SmallIntegerField()
    # The local day (TIME_ZONE) of ordered_at; with 1 or 2 reminders sent never more than
    # CLAMP_DAYS before the reminded day (orders.open_totals: the rule cannot tell those apart).
    ordered_day = models.DateField()
    # The local day of last_reminder_at with 1 or 2 reminders sent (the only levels whose rule reads
    # it), else NO_DAY.
    reminded_day = models.DateField()

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return (f"{self.sales_account_id}/{self.payment_method_id} {self.currency} sent {self.reminders_sent} "
                f"{self.ordered_day} {self.reminded_day}{' blocked' if self.dunning_blocked else ''}")


class OpenTotal(OpenTotalKey):
    """How many open orders and how much money per key, as of the last fold (orders.open_totals):
    only the fold writes here. Orders written since are in OpenTotalDelta. Beside the rows of each
    day, one group row per (account, method, currency, blocked, reminders sent) with ordered_day
    GROUP_DAY holds their sum."""

    n = models.BigIntegerField()
    amount = models.DecimalField(max_digits=20, decimal_places=2)

    class Meta:
        constraints = [models.UniqueConstraint(
            fields=["sales_account_id", "payment_method_id", "currency", "dunning_blocked", "reminders_sent",
                    "ordered_day", "reminded_day"], name="open_total_key_unique")]
        # the overview reads the group rows and the recent days (backoffice.selectors.open_totals_by_level)
        indexes = [models.Index(fields=["reminders_sent", "ordered_day"], name="open_total_sent_ordered_idx"),
                   models.Index(fields=["reminders_sent", "reminded_day"], name="open_total_sent_reminded_idx")]


class OpenTotalDelta(OpenTotalKey):
    """Orders (+ in, - out) and their totals per key that a statement on orders_order changed,
    appended by its triggers (never updated: concurrent writers take no lock on one another)."""

    n = models.BigIntegerField()
    amount = models.DecimalField(max_digits=20, decimal_places=2)
