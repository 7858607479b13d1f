"""The broker is down when staff confirm a large Notify: a real kombu connection to a Redis port
where nothing listens (no mock). Staff get a clear message, nothing is sent or half-sent."""

import time

import pytest
from django.test import Client

from dunning.models import DunningRun, Reminder
from orders.models import Order
from tests.factories import OrderFactory, berlin


@pytest.fixture
def dead_broker(settings):
    from config.celery import app

    saved = {key: app.conf[key] for key in ("broker_url", "task_always_eager", "broker_transport_options",
                                             "task_publish_retry_policy", "broker_connection_timeout")}
    app.conf.update(broker_url="redis://127.0.0.1:9/0", task_always_eager=False, broker_transport_options={},
                    task_publish_retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.2},
                    broker_connection_timeout=1)
    app._pool = None  # forget connections made with the old broker
    app.amqp._producer_pool = None
    yield app
    app.conf.update(saved)
    app._pool = None
    app.amqp._producer_pool = None


def test_dead_broker_at_notify_confirmation(config, assignments, backoffice_user, settings, mailoutbox,
                                            dead_broker, django_capture_on_commit_callbacks):
    settings.DUNNING_ASYNC_NOTIFY_THRESHOLD = 2
    orders = [OrderFactory(ordered_at=berlin(2026, 9, 1)) for _ in range(5)]
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(backoffice_user)
    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/orders/open-payments/notify/", {"dunning_level": "1", "select_across": "1"})
    assert time.monotonic() - started < 30, "staff must not wait for long on a dead broker"
    assert response.status_code == 302
    assert mailoutbox == [] and not Reminder.objects.exists()
    assert set(Order.objects.values_list("reminders_sent", flat=True)) == {0}
    run = DunningRun.objects.get()
    assert run.is_finished and run.sent == 0 and "nicht erreichbar" in run.error  # stored in LANGUAGE_CODE
    page = client.get(response.url).content.decode()
    assert "The task queue is unreachable, so the reminders could not be queued." in page
    assert len(orders) == 5
