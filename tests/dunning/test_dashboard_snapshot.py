"""The dashboard's snapshot task and command: beat sends the task, a second run the same day
changes nothing but today's figures, a bad --days is one line and a non-zero exit."""

import datetime
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from dunning import tasks
from dunning.models import ReceivablesSnapshot, ReminderOutcome, SnapshotDay
from dunning.selectors import local_midnight, local_today
from tests.factories import OrderFactory, ReminderFactory


def test_beat_sends_the_snapshot_task():
    from config.celery import app

    app.loader.import_default_modules()
    app.finalize()
    schedule = {entry["task"]: entry for entry in app.conf.beat_schedule.values()}
    assert "dunning.tasks.record_dashboard_snapshot" in schedule
    assert schedule["dunning.tasks.record_dashboard_snapshot"]["schedule"] == 3600.0


def test_task_twice_is_harmless(db, account, invoice, config):
    today = local_today(timezone.now())
    order = OrderFactory(ordered_at=local_midnight(today - datetime.timedelta(days=30)), total=Decimal("12.00"))
    sent = local_midnight(today - datetime.timedelta(days=10))
    ReminderFactory(order=order, level=1, created_at=sent, sent_at=sent)
    assert tasks.record_dashboard_snapshot() == 1
    counts = (SnapshotDay.objects.count(), ReceivablesSnapshot.objects.count(), ReminderOutcome.objects.count())
    assert counts == (90, 31, 1)  # 90 days recorded; the order open from day -30 to today: 31 days
    assert tasks.record_dashboard_snapshot() == 1
    assert (SnapshotDay.objects.count(), ReceivablesSnapshot.objects.count(), ReminderOutcome.objects.count()) == counts
    assert ReminderOutcome.objects.get().days_to_payment is None  # not paid


@pytest.mark.parametrize("days", ["0", "3661", "-5"])
def test_command_refuses_a_bad_number_of_days(db, days):
    with pytest.raises(CommandError, match="--days must be between 1 and 3660"):
        call_command("record_dashboard_snapshot", "--days", days)
    assert not SnapshotDay.objects.exists()
