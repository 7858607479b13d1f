"""Exactly once under concurrency, on PostgreSQL: several job runs and manual Notifies over the
same due orders, at the same time, send one e-mail per order and level."""

from collections import Counter

import pytest
from django.core import mail
from django.db import connection

from dunning import services
from dunning.models import Reminder
from orders.models import Order
from tests.concurrency import run_in_threads
from tests.factories import DunningConfigFactory, OrderFactory, ReminderAssignmentFactory, berlin
from tests.fake_esp import ScriptedBackend

ORDERS = 300
RUNS = 4

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def setup(require_postgres, settings):
    settings.EMAIL_BACKEND = "tests.fake_esp.ScriptedBackend"
    settings.DUNNING_BATCH_SIZE = 40  # many small claims interleave between the runs
    ScriptedBackend.reset()
    ScriptedBackend.delay = 0.0005
    mail.outbox = []
    config = DunningConfigFactory()
    for level in (1, 2, 3):
        ReminderAssignmentFactory(sales_account=config.sales_account, level=level)
    orders = [OrderFactory(ordered_at=berlin(2026, 9, 1, 12)) for _ in range(ORDERS)]
    yield orders
    ScriptedBackend.reset()


def test_concurrent_job_runs_send_each_reminder_once(setup, now):
    runs = []
    run_in_threads(*[lambda: runs.append(services.dunning_run_execute(now=now)) for _ in range(RUNS)])
    per_recipient = Counter(m.to[0] for m in mail.outbox)
    assert len(per_recipient) == ORDERS
    assert set(per_recipient.values()) == {1}
    assert sum(r.sent for r in runs) == ORDERS
    assert Reminder.objects.filter(level=1, status="sent").count() == ORDERS
    assert set(Order.objects.values_list("reminders_sent", flat=True)) == {1}


def test_concurrent_runs_and_manual_notify_across_levels(setup, now):
    ids = [o.id for o in setup]
    later = [now, berlin(2026, 12, 3, 10), berlin(2026, 12, 10, 10)]
    for level, at in enumerate(later, start=1):
        targets = [lambda at=at: services.dunning_run_execute(now=at) for _ in range(RUNS - 1)]
        targets.append(lambda level=level, at=at: services.orders_notify(order_ids=ids, level=level, user=None,
                                                                           now=at))
        run_in_threads(*targets)
    per_pair = Counter((m.to[0], m.tags[-1]) for m in mail.outbox)
    assert len(per_pair) == ORDERS * 3
    assert set(per_pair.values()) == {1}
    assert set(Order.objects.values_list("reminders_sent", flat=True)) == {3}
    assert Reminder.objects.filter(status="sent").count() == ORDERS * 3


def test_unique_constraint_is_the_last_line_of_defence(setup, now):
    """Even a caller that skips the lock and re-check cannot store a second live reminder."""
    from django.db import IntegrityError, transaction

    order = setup[0]
    Reminder.objects.create(order=order, level=1, trigger="automatic", recipient="a@example.com", subject="s",
                            body="b", status="pending", created_at=now)
    with pytest.raises(IntegrityError), transaction.atomic():
        Reminder.objects.create(order=order, level=1, trigger="manual", recipient="a@example.com", subject="s",
                                body="b", status="sent", created_at=now)


def test_database_connection_dropped_mid_run(setup, settings, now):
    """The connection is killed by the server while e-mails go out: the write-back reconnects, so
    every reminder is recorded once, nothing is sent twice, none is left in flight."""
    import psycopg

    settings.DUNNING_BATCH_SIZE = 100
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    dsn = connection.connection.info.dsn
    sent = {"n": 0}

    def kill_connection_once(message):
        sent["n"] += 1
        if sent["n"] == 30:
            with psycopg.connect(dsn, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", [pid])

    ScriptedBackend.crash_after_send = kill_connection_once
    run = services.dunning_run_execute(now=now)
    assert connection.connection.info.backend_pid != pid  # it reconnected
    assert run.sent == ORDERS and not run.error
    assert Counter(m.to[0] for m in mail.outbox).most_common(1)[0][1] == 1
    assert len(mail.outbox) == ORDERS
    assert Reminder.objects.filter(status="sent").count() == ORDERS
    assert not Reminder.objects.filter(status="pending").exists()
