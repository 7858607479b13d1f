from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.formats import date_format
from django.utils.timezone import localtime
from django.utils.translation import gettext_lazy as _

from accounts.models import Language, SalesAccount
from common.models import FileJob
from orders.models import Order, PaymentMethod

MAX_SEND_ATTEMPTS = 3


class DunningLevel(models.IntegerChoices):
    """The one vocabulary of dunning levels. 1-3 are the levels a reminder is sent at; COMPLETED
    (three reminders sent) is a level an order can be at but no reminder is sent for. In a query
    string a level is written `1`, `2`, `3` or `completed` (`param`); in the database and in
    annotations it is the integer (COMPLETED = 4)."""

    FIRST = 1, _("Level 1")
    SECOND = 2, _("Level 2")
    THIRD = 3, _("Level 3")
    COMPLETED = 4, _("Completed")

    @classmethod
    def sendable(cls) -> tuple["DunningLevel", ...]:
        return (cls.FIRST, cls.SECOND, cls.THIRD)

    @property
    def is_sendable(self) -> bool:
        return self != DunningLevel.COMPLETED

    @property
    def param(self) -> str:
        """How the level is written in a query string (`?dunning_level=completed`)."""
        return "completed" if self == DunningLevel.COMPLETED else str(self.value)

    @property
    def reminders_sent(self) -> int:
        """How many reminders an order at this level has had: 0 before level 1, ..., 3 when completed."""
        return self.value - 1

    @classmethod
    def from_param(cls, value: object) -> "DunningLevel | None":
        """A query-string value ('1', '2', '3', 'completed') as a level; anything else None."""
        return _BY_PARAM.get(value) if isinstance(value, str) else None

    @classmethod
    def coerce(cls, value: object) -> "DunningLevel":
        """A level given in code: a member, 1-4, or any query-string spelling. ValueError otherwise."""
        if isinstance(value, str):
            level = cls.from_param(value)
            if level is not None:
                return level
        elif isinstance(value, int) and not isinstance(value, bool) and value in cls._value2member_map_:
            return cls(value)  # (the map, not `cls.values`: that builds a list per call, per row on a page)
        raise ValueError(f"unknown dunning level {value!r}")


_BY_PARAM = {level.param: level for level in DunningLevel}
LEVELS = tuple(int(level) for level in DunningLevel.sendable())
LEVEL_CHOICES = [(level.value, level.label) for level in DunningLevel.sendable()]


class DunningConfig(models.Model):
    """Dunning settings for one (sales account, payment method)."""

    class CancellationAction(models.TextChoices):
        FLAG = "flag", _("Flag for cancellation")
        CANCEL = "cancel", _("Cancel")
        CANCEL_AND_RELEASE = "cancel_and_release_reservation", _("Cancel and release the reservation")

    sales_account = models.ForeignKey(SalesAccount, on_delete=models.CASCADE, related_name="dunning_configs",
                                      verbose_name=_("sales account"))
    payment_method = models.ForeignKey(PaymentMethod, on_delete=models.CASCADE, related_name="dunning_configs",
                                       verbose_name=_("payment method"))
    is_active = models.BooleanField(_("active"), default=False)
    level_1_days = models.PositiveSmallIntegerField(_("level 1 after (days overdue)"), default=7)
    level_2_days = models.PositiveSmallIntegerField(_("level 2 after (days overdue)"), default=14)
    level_3_days = models.PositiveSmallIntegerField(_("level 3 after (days overdue)"), default=21)
    min_days_between_reminders = models.PositiveSmallIntegerField(_("minimum days between reminders"), default=7)
    minimum_amount = models.DecimalField(_("minimum amount"), max_digits=12, decimal_places=2,
                                         default=Decimal("0"), validators=[MinValueValidator(Decimal("0"))])
    only_orders_since = models.DateField(
        _("only orders since"), null=True, blank=True,
        help_text=_("Orders placed before this date are never reminded, flagged or cancelled."),
    )
    cancel_after_days = models.PositiveSmallIntegerField(
        _("cancel after (days)"), null=True, blank=True,
        help_text=_("Prepayment only: handle open orders this many days after the order date."),
    )
    cancellation_action = models.CharField(_("cancellation action"), max_length=40,
                                           choices=CancellationAction.choices, default=CancellationAction.FLAG)
    # The claim (docs/rules/claim.md). Defaults keep a seller out of trouble: no fees, no interest,
    # no flat fee until someone decides to charge them.
    level_1_fee = models.DecimalField(
        _("fee at level 1"), max_digits=8, decimal_places=2, default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text=_("In the order's currency. Consumers are never charged it: their first reminder is what puts "
                    "them in default. A business customer without the flat fee pays it. No VAT on fees."),
    )
    level_2_fee = models.DecimalField(
        _("fee at level 2"), max_digits=8, decimal_places=2, default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text=_("In the order's currency. For consumers only the material costs of the reminder (postage, "
                    "paper; courts accept about 1 to 2.50 EUR), not staff time. No VAT on fees."),
    )
    level_3_fee = models.DecimalField(
        _("fee at level 3"), max_digits=8, decimal_places=2, default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text=_("In the order's currency. For consumers only the material costs of the reminder (postage, "
                    "paper; courts accept about 1 to 2.50 EUR), not staff time. No VAT on fees."),
    )
    charge_flat_fee_b2b = models.BooleanField(
        _("charge the 40 EUR flat fee to business customers"), default=False,
        help_text=_("§ 288 (5) BGB: a business customer in default owes 40 EUR once, instead of the level fees. "
                    "EUR orders only. Never for consumers."),
    )
    charge_interest = models.BooleanField(
        _("charge default interest"), default=False,
        help_text=_("§ 288 BGB: base rate + 5 points a year for consumers, + 9 points for business customers, "
                    "from the day default began; not compounded, no VAT."),
    )
    payment_deadline_days = models.PositiveSmallIntegerField(
        _("payment deadline (days)"), default=7,
        help_text=_("A reminder asks for payment within this many days of sending; a deadline on a Saturday, "
                    "Sunday or German public holiday moves to the next working day. A consumer is in default "
                    "from the day after the first reminder's deadline."),
    )

    class Meta:
        verbose_name = _("dunning configuration")
        verbose_name_plural = _("dunning configurations")
        ordering = ["sales_account__name", "payment_method__name"]
        constraints = [
            models.UniqueConstraint(fields=["sales_account", "payment_method"], name="dunningconfig_unique"),
            models.CheckConstraint(
                condition=Q(level_1_days__lt=models.F("level_2_days"), level_2_days__lt=models.F("level_3_days")),
                name="dunningconfig_levels_increase",
                violation_error_message=_("The days must increase: level 1 < level 2 < level 3."),
            ),
            models.CheckConstraint(
                condition=Q(level_1_fee__gte=0, level_2_fee__gte=0, level_3_fee__gte=0),
                name="dunningconfig_fees_not_negative",
                violation_error_message=_("A fee cannot be negative."),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sales_account} / {self.payment_method}"

    def clean(self) -> None:
        super().clean()
        if self.cancel_after_days is not None and self.payment_method_id and not self.payment_method.is_prepayment:
            raise ValidationError({"cancel_after_days": _("Only prepayment orders are cancelled automatically.")})

    def level_days(self, level: int) -> int:
        return {1: self.level_1_days, 2: self.level_2_days, 3: self.level_3_days}[level]

    @property
    def fees(self) -> dict[int, Decimal]:
        """The fee of each level (1, 2, 3), as `dunning.claim.claim_compute` takes them."""
        return {1: self.level_1_fee, 2: self.level_2_fee, 3: self.level_3_fee}


class BaseRate(models.Model):
    """The base rate (Basiszinssatz, § 247 BGB) valid from a day until the next one. Published by the
    Bundesbank twice a year (1 January, 1 July); support staff (superusers) add each new value."""

    valid_from = models.DateField(_("valid from"), unique=True)
    rate = models.DecimalField(_("rate (percent a year)"), max_digits=5, decimal_places=2,
                               validators=[MinValueValidator(Decimal("-10")), MaxValueValidator(Decimal("50"))],
                               help_text=_("May be negative (it was from 2013 to 2022)."))

    class Meta:
        verbose_name = _("base rate")
        verbose_name_plural = _("base rates")
        ordering = ["-valid_from"]

    def __str__(self) -> str:
        return f"{self.valid_from:%Y-%m-%d}: {self.rate} %"


class EmailTemplate(models.Model):
    """A reminder e-mail written by staff in (sandboxed) Jinja2."""

    name = models.CharField(_("name"), max_length=100)
    language = models.CharField(_("language"), max_length=2, choices=Language.choices, default=Language.GERMAN)
    subject = models.CharField(_("subject"), max_length=255)
    body = models.TextField(_("text body"))
    html_body = models.TextField(_("HTML body"), blank=True, help_text=_("Optional; sent as an alternative."))

    class Meta:
        verbose_name = _("e-mail template")
        verbose_name_plural = _("e-mail templates")
        ordering = ["name", "language"]
        constraints = [models.UniqueConstraint(fields=["name", "language"], name="emailtemplate_name_language")]

    def __str__(self) -> str:
        return f"{self.name} ({self.language})"

    def clean(self) -> None:
        from .templating import validate_template_fields

        super().clean()
        validate_template_fields(subject=self.subject, body=self.body, html_body=self.html_body)


class LetterTemplate(models.Model):
    """The text of a reminder letter (docs/rules/letters.md), written by staff in the same sandboxed
    Jinja2 and with the same placeholders as e-mails. The layout around it (DIN 5008 form B: address
    field, information block, the claim table, payment details, QR code, footer) is fixed."""

    name = models.CharField(_("name"), max_length=100)
    language = models.CharField(_("language"), max_length=2, choices=Language.choices, default=Language.GERMAN)
    subject = models.CharField(_("subject"), max_length=255, help_text=_("The letter's subject line."))
    body = models.TextField(
        _("text before the claim"),
        help_text=_("Salutation and text above the table of the claim. A blank line starts a new paragraph."))
    closing = models.TextField(
        _("text after the claim"), blank=True,
        help_text=_("Text below the table and the payment details, e.g. the greeting."))

    class Meta:
        verbose_name = _("letter template")
        verbose_name_plural = _("letter templates")
        ordering = ["name", "language"]
        constraints = [models.UniqueConstraint(fields=["name", "language"], name="lettertemplate_name_language")]

    def __str__(self) -> str:
        return f"{self.name} ({self.language})"

    def clean(self) -> None:
        from .templating import validate_template_fields

        super().clean()
        validate_template_fields(subject=self.subject, body=self.body, closing=self.closing)


class ReminderAssignment(models.Model):
    """Which template a sales account sends at a level, and whether the job sends it."""

    sales_account = models.ForeignKey(SalesAccount, on_delete=models.CASCADE, related_name="reminder_assignments",
                                      verbose_name=_("sales account"))
    level = models.PositiveSmallIntegerField(_("level"), choices=LEVEL_CHOICES,
                                             validators=[MinValueValidator(1), MaxValueValidator(3)])
    template = models.ForeignKey(EmailTemplate, on_delete=models.PROTECT, related_name="assignments",
                                 verbose_name=_("template"))
    send_automatically = models.BooleanField(_("send automatically"), default=False)
    letter_template = models.ForeignKey(
        LetterTemplate, on_delete=models.PROTECT, null=True, blank=True, related_name="assignments",
        verbose_name=_("letter template"), help_text=_("The text of the PDF letter (blank: the built-in text)."))
    attach_pdf = models.BooleanField(_("attach the letter as PDF"), default=False,
                                     help_text=_("The reminder e-mail carries its letter as a PDF attachment."))

    class Meta:
        verbose_name = _("reminder assignment")
        verbose_name_plural = _("reminder assignments")
        ordering = ["sales_account__name", "level"]
        constraints = [
            models.UniqueConstraint(fields=["sales_account", "level"], name="assignment_unique_per_level"),
            models.CheckConstraint(condition=Q(level__gte=1, level__lte=3), name="assignment_level_1_to_3"),
        ]

    def __str__(self) -> str:
        return f"{self.sales_account} L{self.level}: {self.template}"


class DunningRun(models.Model):
    """One run of the job (scheduled, command or manual Notify) with its counts."""

    class Trigger(models.TextChoices):
        SCHEDULED = "scheduled", _("Scheduled")
        COMMAND = "command", _("Command")
        MANUAL = "manual", _("Manual (Notify)")

    trigger = models.CharField(_("trigger"), max_length=20, choices=Trigger.choices)
    dry_run = models.BooleanField(_("dry run"), default=False)
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   verbose_name=_("started by"))
    started_at = models.DateTimeField(_("started at"))
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), null=True, blank=True)
    sent = models.PositiveIntegerField(_("sent"), default=0)
    failed = models.PositiveIntegerField(_("failed"), default=0)
    skipped = models.PositiveIntegerField(_("skipped"), default=0)
    flagged = models.PositiveIntegerField(_("flagged"), default=0)
    cancelled = models.PositiveIntegerField(_("cancelled"), default=0)
    details = models.JSONField(_("details"), default=dict, blank=True)
    error = models.TextField(_("error"), blank=True)

    class Meta:
        verbose_name = _("dunning run")
        verbose_name_plural = _("dunning runs")
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        # in TIME_ZONE and the active language's format, as the admin's breadcrumbs and titles show it
        return f"{self.get_trigger_display()} {date_format(localtime(self.started_at), 'SHORT_DATETIME_FORMAT')}"

    @property
    def is_finished(self) -> bool:
        return self.finished_at is not None

    @property
    def duration_seconds(self) -> float | None:
        return None if self.duration_ms is None else self.duration_ms / 1000


class DunningRunChunk(models.Model):
    """A part of a run's work (one level, up to DUNNING_BATCH_SIZE orders) that any worker takes as
    a task (`dunning.tasks.send_chunk`). It keeps its outcome; the run is closed, with the sums of
    its chunks, when the last one ends (dunning.services.runs, docs/rules/sending.md)."""

    run = models.ForeignKey(DunningRun, on_delete=models.CASCADE, related_name="chunks", verbose_name=_("run"))
    level = models.PositiveSmallIntegerField(_("level"))
    order_ids = models.JSONField(_("orders"), default=list)
    queued_at = models.DateTimeField(_("queued at"))
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    sent = models.PositiveIntegerField(_("sent"), default=0)
    failed = models.PositiveIntegerField(_("failed"), default=0)
    skipped = models.PositiveIntegerField(_("skipped"), default=0)
    outcome = models.JSONField(_("outcome"), default=dict, blank=True)
    error = models.TextField(_("error"), blank=True)

    class Meta:
        verbose_name = _("dunning run chunk")
        verbose_name_plural = _("dunning run chunks")
        ordering = ["run", "id"]

    def __str__(self) -> str:
        return f"{self.run_id}/{self.pk}"


class Reminder(models.Model):
    """One reminder e-mail to one order at one level; the outbox row is written before sending."""

    class Trigger(models.TextChoices):
        MANUAL = "manual", _("Manual")
        AUTOMATIC = "automatic", _("Automatic")

    class Status(models.TextChoices):
        PENDING = "pending", _("In flight")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")
        DELIVERED = "delivered", _("Delivered")
        BOUNCED = "bounced", _("Bounced")
        COMPLAINED = "complained", _("Complained")

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="reminders", verbose_name=_("order"))
    level = models.PositiveSmallIntegerField(_("level"), choices=LEVEL_CHOICES)
    trigger = models.CharField(_("trigger"), max_length=20, choices=Trigger.choices)
    sent_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                verbose_name=_("sent by"))
    run = models.ForeignKey(DunningRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="reminders")
    template = models.ForeignKey(EmailTemplate, null=True, blank=True, on_delete=models.SET_NULL,
                                 verbose_name=_("template"))
    recipient = models.EmailField(_("recipient"))
    subject = models.CharField(_("subject"), max_length=255)
    body = models.TextField(_("body"))
    html_body = models.TextField(_("HTML body"), blank=True)
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.PENDING)
    claim = models.UUIDField(_("claim"), null=True, blank=True, editable=False)
    message_id = models.CharField(_("message id"), max_length=255, blank=True)
    error = models.TextField(_("error"), blank=True)
    created_at = models.DateTimeField(_("created at"))
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    # Set just before the e-mail is handed to the provider: a pending reminder without it was never
    # handed over, so once its claiming run is gone it can be withdrawn and sent again.
    handed_at = models.DateTimeField(_("handed to the provider at"), null=True, blank=True)
    status_changed_at = models.DateTimeField(_("status changed at"), null=True, blank=True)
    # What the reminder told the customer (docs/rules/claim.md): the claim on the day it was sent, as
    # decimal strings with two places, and the payment deadline it set. Empty / null on older rows.
    claim_snapshot = models.JSONField(_("claim stated"), default=dict, blank=True, editable=False)
    deadline = models.DateField(_("payment deadline"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("reminder")
        verbose_name_plural = _("reminders")
        ordering = ["-created_at", "-id"]
        constraints = [
            # The last line of defence: never two live reminders of one level to one order.
            models.UniqueConstraint(fields=["order", "level"], condition=~Q(status="failed"),
                                    name="reminder_one_live_per_order_level"),
            models.CheckConstraint(condition=Q(level__gte=1, level__lte=3), name="reminder_level_1_to_3"),
        ]
        indexes = [
            models.Index(fields=["claim"], name="reminder_claim_idx"),
            models.Index(fields=["status", "created_at"], name="reminder_status_idx"),
            models.Index(fields=["message_id"], name="reminder_message_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.order.number} L{self.level} {self.status}"


class SendRateBucket(models.Model):
    """The token bucket of DUNNING_SEND_RATE when no Redis is configured: one row, locked per take."""

    tokens = models.FloatField(default=0)
    updated_at = models.DateTimeField(null=True, blank=True)
    paused_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"send rate bucket: {self.tokens:.1f} tokens"


class DunningAutomation(models.Model):
    """The one global switch of the automatic job. Only support staff (superusers) change it."""

    enabled = models.BooleanField(_("enabled"), default=False)
    interval_minutes = models.PositiveIntegerField(_("interval (minutes)"), default=60,
                                                   validators=[MinValueValidator(1), MaxValueValidator(10080)])
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", verbose_name=_("changed by"))
    changed_at = models.DateTimeField(_("changed at"), null=True, blank=True)
    last_scheduled_run_at = models.DateTimeField(_("last scheduled run"), null=True, blank=True)
    lease_owner = models.CharField(_("lease owner"), max_length=64, blank=True)
    lease_expires_at = models.DateTimeField(_("lease expires"), null=True, blank=True)

    class Meta:
        verbose_name = _("dunning automation")
        verbose_name_plural = _("dunning automation")
        constraints = [models.CheckConstraint(condition=Q(id=1), name="dunningautomation_singleton")]

    def __str__(self) -> str:
        return str(_("Automatic dunning"))

    @classmethod
    def load(cls) -> "DunningAutomation":
        obj, _created = cls.objects.get_or_create(pk=1)
        return obj


class AutomationChange(models.Model):
    """Audit row for every change of the global switch."""

    automation = models.ForeignKey(DunningAutomation, on_delete=models.CASCADE, related_name="changes")
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   verbose_name=_("changed by"))
    changed_at = models.DateTimeField(_("changed at"))
    old = models.JSONField(_("old value"), default=dict)
    new = models.JSONField(_("new value"), default=dict)

    class Meta:
        verbose_name = _("automation change")
        verbose_name_plural = _("automation changes")
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.changed_at:%Y-%m-%d %H:%M} {self.old} -> {self.new}"


class TrackingEvent(models.Model):
    """One event of the e-mail provider's tracking webhook (delivered, bounced, opened, ...), recorded once
    per provider event id; see dunning.tracking.reminder_track_event."""

    class Outcome(models.TextChoices):
        APPLIED = "applied", _("Reminder status changed")
        UNCHANGED = "unchanged", _("Recorded, reminder status unchanged")
        UNKNOWN_MESSAGE = "unknown_message", _("Unknown message, ignored")

    provider = models.CharField(_("provider"), max_length=40)
    event_id = models.CharField(_("event id"), max_length=255)
    event_type = models.CharField(_("event type"), max_length=40)
    reminder = models.ForeignKey(Reminder, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="tracking_events", verbose_name=_("reminder"))
    message_id = models.CharField(_("message id"), max_length=255, blank=True)
    occurred_at = models.DateTimeField(_("occurred at"), null=True, blank=True)
    received_at = models.DateTimeField(_("received at"))
    description = models.TextField(_("description"), blank=True)
    metadata = models.JSONField(_("metadata"), default=dict, blank=True)
    outcome = models.CharField(_("outcome"), max_length=20, choices=Outcome.choices)

    class Meta:
        verbose_name = _("tracking event")
        verbose_name_plural = _("tracking events")
        ordering = ["-received_at", "-id"]
        constraints = [
            # Providers deliver webhooks at least once: the same event twice is recorded once.
            models.UniqueConstraint(fields=["provider", "event_id"], name="trackingevent_unique_per_provider"),
        ]
        indexes = [
            # the admin list: newest first, and its search by the provider's message id
            models.Index(fields=["-received_at", "-id"], name="trackingevent_received_idx"),
            models.Index(fields=["message_id"], name="trackingevent_message_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.event_type} {self.message_id or self.event_id}"


# --- the dashboard's summary tables (dunning/reporting.py writes them; docs/rules/dashboard.md) ---


class SnapshotDay(models.Model):
    """A day whose receivables snapshot is recorded (its `ReceivablesSnapshot` rows may be none: nothing
    open and nothing ordered). A day without this row has no snapshot: the trend leaves a gap, and
    the next run backfills it."""

    day = models.DateField(_("day"), unique=True)
    backfilled = models.BooleanField(_("backfilled from history"), default=False)
    recorded_at = models.DateTimeField(_("recorded at"))

    class Meta:
        verbose_name = _("snapshot day")
        verbose_name_plural = _("snapshot days")
        ordering = ["-day"]

    def __str__(self) -> str:
        return str(self.day)


class ReceivablesSnapshot(models.Model):
    """The open receivables of one sales account in one currency on one day: what the dashboard's
    90-day trend and days sales outstanding read. Today's row is rewritten by every run of the
    snapshot task (the state at that run); a past day's row is never rewritten. A day missing in the
    last 90 is backfilled from the order history as the state at the end of that day."""

    day = models.DateField(_("day"))
    sales_account = models.ForeignKey(SalesAccount, on_delete=models.CASCADE, related_name="+",
                                      verbose_name=_("sales account"))
    currency = models.CharField(_("currency"), max_length=3)
    open_count = models.PositiveIntegerField(_("open orders"), default=0)
    open_amount = models.DecimalField(_("open amount"), max_digits=16, decimal_places=2, default=Decimal("0"))
    overdue_count = models.PositiveIntegerField(_("overdue orders"), default=0)
    overdue_amount = models.DecimalField(_("overdue amount"), max_digits=16, decimal_places=2, default=Decimal("0"))
    sales_count = models.PositiveIntegerField(_("orders placed"), default=0)
    sales_amount = models.DecimalField(_("amount ordered"), max_digits=16, decimal_places=2, default=Decimal("0"))
    backfilled = models.BooleanField(_("backfilled from history"), default=False)
    recorded_at = models.DateTimeField(_("recorded at"))

    class Meta:
        verbose_name = _("receivables snapshot")
        verbose_name_plural = _("receivables snapshots")
        ordering = ["-day", "sales_account", "currency"]
        constraints = [
            # one row per day, account and currency: a second run on the same day updates it
            models.UniqueConstraint(fields=["day", "sales_account", "currency"], name="snapshot_unique_per_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.sales_account_id} {self.currency}"


class ReminderOutcome(models.Model):
    """How many reminders sent on `sent_on` at `level` with `template` in `currency` were followed by
    the order's payment `days_to_payment` days later (NULL: not paid after it, or a later reminder
    went out before the payment), and the totals of those orders. Rebuilt in full by the snapshot
    task from the reminders and the orders' payment dates; the effectiveness table sums it over a
    period."""

    sent_on = models.DateField(_("sent on"))
    level = models.PositiveSmallIntegerField(_("level"))
    template = models.ForeignKey(EmailTemplate, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                 verbose_name=_("template"))
    currency = models.CharField(_("currency"), max_length=3)
    days_to_payment = models.PositiveIntegerField(_("days to payment"), null=True, blank=True)
    reminders = models.PositiveIntegerField(_("reminders"))
    amount = models.DecimalField(_("amount"), max_digits=16, decimal_places=2)

    class Meta:
        verbose_name = _("reminder outcome")
        verbose_name_plural = _("reminder outcomes")
        indexes = [models.Index(fields=["sent_on"], name="reminderoutcome_sent_idx")]

    def __str__(self) -> str:
        return f"{self.sent_on} L{self.level} {self.days_to_payment}"


class LetterBatch(FileJob):
    """"All letters as one PDF" for postal sending: the letters of some reminders in one file,
    rendered inline when few, in the worker with progress when many (dunning.letters)."""

    KEEP_DAYS_SETTING = "LETTER_BATCHES_KEEP_DAYS"

    reminder_ids = models.JSONField(_("reminders"), default=list)
    total = models.PositiveIntegerField(_("letters"), default=0)
    done = models.PositiveIntegerField(_("letters rendered"), default=0)
    pdf = models.FileField(_("PDF"), upload_to="letters/", blank=True)

    class Meta:
        verbose_name = _("letter batch")
        verbose_name_plural = _("letter batches")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.total} letters {self.created_at:%Y-%m-%d %H:%M}"
