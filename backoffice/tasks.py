"""Celery tasks of the back office: they take ids and call a service, nothing else."""

from celery import shared_task

from . import services


@shared_task(name="backoffice.notify_orders", acks_late=True)
def notify_orders(*, run_id: int, order_ids: list[int], level: int, user_id: int | None) -> None:
    """A large manual Notify, run in the worker; its DunningRun was created by the view."""
    services.notify_task_run(run_id=run_id, order_ids=order_ids, level=level, user_id=user_id)
