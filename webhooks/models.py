"""Webhooks: state out to the shop or ERP (docs/rules/api-and-webhooks.md).

An endpoint belongs to one sales account and receives the events of that account. Events are
written to an outbox (`WebhookEvent` plus one `WebhookDelivery` per subscribed endpoint) in the
same transaction as the change that causes them, so an event exists exactly when its change was
committed; the Celery worker delivers them later (webhooks.delivery). A slow or dead endpoint
therefore never slows the change itself, and nothing is lost when the worker or the receiver is
down: the delivery row waits with its `next_attempt_at`."""

import base64
import secrets
import uuid

from django.db import models
from django.utils.translation import gettext_lazy as _

from accounts.models import SalesAccount

SECRET_PREFIX = "whsec_"


class EventType(models.TextChoices):
    REMINDER_SENT = "reminder.sent", "reminder.sent"
    ORDER_PAID = "order.paid", "order.paid"
    ORDER_FLAGGED_FOR_CANCELLATION = "order.flagged_for_cancellation", "order.flagged_for_cancellation"
    ORDER_CANCELLED = "order.cancelled", "order.cancelled"
    PAYMENT_UNMATCHED = "payment.unmatched", "payment.unmatched"


def new_secret() -> str:
    """`whsec_` + base64 of 32 random bytes (the Standard Webhooks format)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def new_event_id() -> str:
    return "msg_" + uuid.uuid4().hex


class WebhookEndpoint(models.Model):
    sales_account = models.ForeignKey(SalesAccount, on_delete=models.CASCADE, related_name="webhook_endpoints",
                                      verbose_name=_("sales account"))
    url = models.URLField(_("URL"), max_length=500)
    secret = models.CharField(_("signing secret"), max_length=100, default=new_secret, editable=False)
    events = models.JSONField(_("events"), default=list, blank=True,
                              help_text=_("Event types to send (a JSON list); empty: all."))
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")
        ordering = ["sales_account", "url"]

    def __str__(self) -> str:
        return f"{self.sales_account}: {self.url}"

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from .urls_check import url_problem

        errors = {}
        if not isinstance(self.events, list) or not all(isinstance(e, str) for e in self.events):
            errors["events"] = _("A JSON list of event types, e.g. [\"order.cancelled\"].")
        else:
            unknown = sorted(set(self.events) - set(EventType.values))
            if unknown:
                errors["events"] = _("Unknown event types: %(unknown)s (known: %(known)s).") % {
                    "unknown": ", ".join(unknown), "known": ", ".join(EventType.values)}
        if self.url:
            problem = url_problem(self.url)
            if problem:
                errors["url"] = problem
        if errors:
            raise ValidationError(errors)

    def wants(self, event_type: str) -> bool:
        return not self.events or event_type in self.events


class WebhookEvent(models.Model):
    """One event of the outbox. `id` is the `webhook-id` of every attempt to deliver it."""

    id = models.CharField(primary_key=True, max_length=40, default=new_event_id, editable=False)
    type = models.CharField(_("type"), max_length=60, choices=EventType.choices)
    sales_account = models.ForeignKey(SalesAccount, on_delete=models.CASCADE, related_name="+",
                                      verbose_name=_("sales account"))
    created_at = models.DateTimeField(_("created at"))
    data = models.JSONField(_("data"), default=dict)

    class Meta:
        verbose_name = _("webhook event")
        verbose_name_plural = _("webhook events")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.type} {self.id}"

    def payload(self) -> dict:
        return {"id": self.id, "type": self.type, "created_at": self.created_at.isoformat(), "data": self.data}


class WebhookDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        DELIVERED = "delivered", _("delivered")
        FAILED = "failed", _("failed")

    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    last_attempt_at = models.DateTimeField(_("last attempt"), null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(_("last status code"), null=True, blank=True)
    last_duration_ms = models.PositiveIntegerField(_("last duration (ms)"), null=True, blank=True)
    last_error = models.CharField(_("last error"), max_length=300, blank=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["event", "endpoint"], name="webhook_delivery_once")]
        indexes = [models.Index(fields=["next_attempt_at"], condition=models.Q(status="pending"),
                                name="webhook_delivery_due_idx")]

    def __str__(self) -> str:
        return f"{self.event_id} -> {self.endpoint_id} ({self.status})"
