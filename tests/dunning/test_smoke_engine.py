import datetime

from dunning import selectors, services
from dunning.models import Reminder
from tests.factories import OrderFactory, berlin


def test_level_one_send_end_to_end(config, assignments, now, mailoutbox):
    due = OrderFactory(ordered_at=berlin(2026, 11, 5, 12))  # due 19.11., 7 days overdue on 26.11.
    not_yet = OrderFactory(ordered_at=berlin(2026, 11, 6, 12))  # 6 days overdue
    configs = selectors.active_configs()
    assert list(selectors.orders_at_level(1, now=now, configs=configs)) == [due]
    run = services.dunning_run_execute(now=now)
    assert run.sent == 1, run.details
    assert len(mailoutbox) == 1
    due.refresh_from_db()
    assert due.reminders_sent == 1
    assert Reminder.objects.get(order=due).status == "sent"
    not_yet.refresh_from_db()
    assert not_yet.reminders_sent == 0
    # run again the same day: nothing more
    run2 = services.dunning_run_execute(now=now + datetime.timedelta(hours=1))
    assert run2.sent == 0
    assert len(mailoutbox) == 1
