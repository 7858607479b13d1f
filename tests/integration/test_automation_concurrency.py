"""The scheduled tick under concurrency, on PostgreSQL: ticks at the same moment give one run, and
`run_dunning` alongside a scheduled run sends each reminder once."""

import datetime

import pytest

from dunning import services
from dunning.automation import automation_tick
from dunning.models import DunningAutomation, DunningRun, Reminder
from tests.concurrency import run_in_threads
from tests.dunning.test_automation import switch
from tests.factories import OrderFactory, berlin


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_ticks_give_one_run(require_postgres, config, assignments, now, mailoutbox):
    for day in range(1, 6):
        OrderFactory(ordered_at=berlin(2026, 11, day, 12))
    switch(enabled=True, interval=60)
    results = run_in_threads(*[lambda: automation_tick(now=now)] * 4)
    runs = [r for r in results if r is not None]
    assert len(runs) == 1
    assert DunningRun.objects.count() == 1
    assert Reminder.objects.filter(status="sent").count() == 5 == len(mailoutbox)
    assert DunningAutomation.objects.get(pk=1).lease_owner == ""


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_run_dunning_alongside_a_scheduled_run_sends_each_reminder_once(require_postgres, config, assignments,
                                                                        now, mailoutbox, settings):
    settings.DUNNING_BATCH_SIZE = 7  # several chunks, so the two runs interleave
    orders = [OrderFactory(ordered_at=berlin(2026, 11, 1, 12) + datetime.timedelta(minutes=i)) for i in range(60)]
    switch(enabled=True, interval=60)
    results = run_in_threads(
        lambda: automation_tick(now=now),
        lambda: services.dunning_run_execute(now=now, trigger=DunningRun.Trigger.COMMAND),
    )
    scheduled, command = results
    assert scheduled is not None and command is not None
    assert scheduled.sent + command.sent == len(orders)
    assert Reminder.objects.count() == len(orders) == len(mailoutbox)
    assert sorted(Reminder.objects.values_list("order_id", flat=True)) == sorted(o.id for o in orders)
