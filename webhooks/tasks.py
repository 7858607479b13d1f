"""Celery tasks of the webhooks: a thin wrapper around the delivery sweep."""

from celery import shared_task

from . import delivery


@shared_task(name="webhooks.tasks.deliver_due", ignore_result=True)
def deliver_due() -> tuple[int, int]:
    """Queued after every commit that wrote events, and sent by beat every WEBHOOK_SWEEP_SECONDS
    (retries and anything the kick missed). Safe to run concurrently: rows are claimed under a lease."""
    return delivery.deliveries_send_due()
