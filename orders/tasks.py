"""Celery tasks of the orders: the fold of the open orders' totals."""

from celery import shared_task

from . import open_totals


@shared_task(name="orders.tasks.fold_open_totals", ignore_result=True)
def fold_open_totals() -> int | None:
    """Sent by beat every OPEN_TOTALS_FOLD_SECONDS: the deltas the triggers appended since, moved
    into the buckets (orders.open_totals.fold; one fold at a time, a second one returns None)."""
    return open_totals.fold()
