"""The job: automatic reminders per assignment, prepayment cancellation with team notices, dry
run, and the run_dunning command."""

import datetime
from io import StringIO
from unittest import mock

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.db import connection
from kombu.exceptions import OperationalError

from dunning import services
from dunning.models import DunningConfig, DunningRun, DunningRunChunk, Reminder, ReminderAssignment
from orders.models import Order
from tests.factories import (
    DunningConfigFactory,
    OrderFactory,
    ReminderAssignmentFactory,
    SalesAccountFactory,
    berlin,
)


@pytest.fixture
def prepay_config(account, prepayment):
    return DunningConfigFactory(sales_account=account, payment_method=prepayment, cancel_after_days=14,
                                cancellation_action=DunningConfig.CancellationAction.FLAG)


@pytest.fixture
def prepay_order(prepayment, now):
    """prepay_order(days_ago, **kw): a prepayment order placed `days_ago` days before `now`."""

    def _order(days_ago, **kw):
        return OrderFactory(payment_method=prepayment, ordered_at=now - datetime.timedelta(days=days_ago), **kw)

    return _order


def test_only_levels_with_send_automatically_are_sent(config, account, now):
    ReminderAssignmentFactory(sales_account=account, level=1, send_automatically=False)
    ReminderAssignmentFactory(sales_account=account, level=2, send_automatically=True)
    level1 = OrderFactory(ordered_at=berlin(2026, 9, 1))
    level2 = OrderFactory(ordered_at=berlin(2026, 9, 1), reminders_sent=1, last_reminder_at=berlin(2026, 10, 1))
    run = services.dunning_run_execute(now=now)
    assert run.sent == 1
    assert [m.to[0] for m in mail.outbox] == [level2.customer_email]
    assert Order.objects.get(pk=level1.pk).reminders_sent == 0
    assert run.details["levels"] == {"Webshop": {"2": {"sent": 1}}}


def test_one_run_moves_an_order_up_one_level_only(account, invoice, now):
    DunningConfigFactory(sales_account=account, payment_method=invoice, level_1_days=0, level_2_days=1,
                         level_3_days=2, min_days_between_reminders=0)
    for level in (1, 2, 3):
        ReminderAssignmentFactory(sales_account=account, level=level)
    order = OrderFactory(ordered_at=berlin(2026, 9, 1))
    services.dunning_run_execute(now=now)
    assert Order.objects.get(pk=order.pk).reminders_sent == 1
    services.dunning_run_execute(now=now + datetime.timedelta(minutes=5))
    assert Order.objects.get(pk=order.pk).reminders_sent == 2


def test_inactive_config_and_inactive_assignment_send_nothing(config, assignments, now):
    OrderFactory(ordered_at=berlin(2026, 9, 1))
    DunningConfig.objects.update(is_active=False)
    assert services.dunning_run_execute(now=now).sent == 0
    DunningConfig.objects.update(is_active=True)
    ReminderAssignment.objects.update(send_automatically=False)
    assert services.dunning_run_execute(now=now).sent == 0
    assert mail.outbox == []


def test_prepayment_orders_are_flagged_once_with_one_notice_per_account(prepay_config, now, prepay_order):
    old = prepay_order(14, total=5)  # "whatever their amount"
    young = prepay_order(13)
    blocked = prepay_order(30, dunning_blocked=True)
    paid = prepay_order(30, paid_at=now)
    run = services.dunning_run_execute(now=now)
    assert run.flagged == 1 and run.cancelled == 0
    assert Order.objects.get(pk=old.pk).flagged_for_cancellation_at == now
    for untouched in (young, blocked, paid):
        assert Order.objects.get(pk=untouched.pk).flagged_for_cancellation_at is None
    notices = [m for m in mail.outbox if m.to == ["team@shop.example"]]
    assert len(notices) == 1
    assert old.number in notices[0].body and young.number not in notices[0].body
    # next run: already flagged, not listed again, no empty notice
    mail.outbox = []
    run2 = services.dunning_run_execute(now=now + datetime.timedelta(hours=1))
    assert run2.flagged == 0 and mail.outbox == []


def test_cancel_and_release(prepay_config, now, prepay_order):
    DunningConfig.objects.filter(pk=prepay_config.pk).update(
        cancellation_action=DunningConfig.CancellationAction.CANCEL_AND_RELEASE)
    order = prepay_order(20)
    run = services.dunning_run_execute(now=now)
    order.refresh_from_db()
    assert run.cancelled == 1
    assert order.cancelled_at == now and order.reservation_released_at == now
    assert order.events.filter(action="auto_cancel_and_release_reservation").exists()


def test_cancel_respects_only_orders_since(prepay_config, prepayment, now, prepay_order):
    DunningConfig.objects.filter(pk=prepay_config.pk).update(
        cancellation_action=DunningConfig.CancellationAction.CANCEL, only_orders_since=datetime.date(2026, 11, 1))
    before = prepay_order(30)
    after = OrderFactory(payment_method=prepayment, ordered_at=berlin(2026, 11, 1, 0, 0))
    services.dunning_run_execute(now=now)
    assert Order.objects.get(pk=before.pk).cancelled_at is None
    assert Order.objects.get(pk=after.pk).cancelled_at == now


def test_notices_go_to_each_account_team(prepayment, now):
    for name in ("Webshop", "eBay"):
        account = SalesAccountFactory(name=name, team_email=f"team@{name.lower()}.example")
        DunningConfigFactory(sales_account=account, payment_method=prepayment, cancel_after_days=7)
        OrderFactory(sales_account=account, payment_method=prepayment, ordered_at=now - datetime.timedelta(days=9))
    services.dunning_run_execute(now=now)
    assert sorted(m.to[0] for m in mail.outbox) == ["team@ebay.example", "team@webshop.example"]


def test_dry_run_changes_and_sends_nothing(config, assignments, prepay_config, now, prepay_order):
    due = OrderFactory(ordered_at=berlin(2026, 9, 1))
    prepay_order(20)
    run = services.dunning_run_execute(now=now, dry_run=True)
    assert run.dry_run and run.sent == 0
    assert run.details["levels"] == {"Webshop": {"1": {"due": 2}}}  # the prepayment order is due too
    assert run.details["cancellation"] == {"Webshop": {"flagged": 1, "cancelled": 0}}
    assert mail.outbox == []
    assert not Reminder.objects.exists()
    assert Order.objects.get(pk=due.pk).reminders_sent == 0
    assert not Order.objects.filter(flagged_for_cancellation_at__isnull=False).exists()


def test_run_dunning_command_prints_a_summary(config, assignments):
    OrderFactory(ordered_at=berlin(2026, 9, 1))
    out = StringIO()
    call_command("run_dunning", stdout=out)
    text = out.getvalue()
    assert "Webshop / level 1: sent 1" in text
    assert "Total: sent 1" in text
    assert DunningRun.objects.get().trigger == "command"


def test_run_dunning_dry_run_and_account_filter(config, assignments):
    OrderFactory(ordered_at=berlin(2026, 9, 1))
    other = SalesAccountFactory(name="eBay")
    DunningConfigFactory(sales_account=other, payment_method=config.payment_method)
    ReminderAssignmentFactory(sales_account=other, level=1)
    OrderFactory(ordered_at=berlin(2026, 9, 1), sales_account=other)
    out = StringIO()
    call_command("run_dunning", "--dry-run", "--sales-account", "eBay", stdout=out)
    text = out.getvalue()
    assert "DRY RUN" in text and "eBay / level 1: due 1" in text and "Webshop" not in text
    assert mail.outbox == []


def test_run_dunning_unknown_account_is_one_line_error(db):
    with pytest.raises(CommandError, match="unknown sales account 'Nope'"):
        call_command("run_dunning", "--sales-account", "Nope")


def test_run_dunning_bad_option_exits_nonzero(db, capsys):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "manage.py", "run_dunning", "--bogus"], capture_output=True,
                            text=True, timeout=60, env={**__import__("os").environ, "DJANGO_DEBUG": "1"})
    assert result.returncode != 0
    assert "unrecognized arguments: --bogus" in result.stderr
    assert "Traceback" not in result.stderr


# --- fan-out: the run's work as chunk tasks ------------------------------------------------------

def test_fanned_out_run_sums_its_chunks_and_ends_with_the_last(config, account, now, settings):
    ReminderAssignmentFactory(sales_account=account, level=1)
    orders = [OrderFactory(ordered_at=berlin(2026, 9, 1, 12)) for _ in range(5)]
    settings.DUNNING_BATCH_SIZE = 2
    run = services.dunning_run_execute(now=now, fan_out=True)  # eager in tests: each task runs at once
    chunks = list(DunningRunChunk.objects.filter(run=run).order_by("id"))
    assert [len(c.order_ids) for c in chunks] == [2, 2, 1]
    assert all(c.finished_at and c.sent == len(c.order_ids) for c in chunks)
    assert (run.sent, run.failed, run.skipped, run.details["chunks"]) == (5, 0, 0, 3)
    assert run.finished_at is not None and run.details["levels"][account.name]["1"]["sent"] == 5
    assert len(mail.outbox) == len(orders)


def test_broker_down_when_chunks_are_queued_works_them_here(config, account, now, settings):
    ReminderAssignmentFactory(sales_account=account, level=1)
    orders = [OrderFactory(ordered_at=berlin(2026, 9, 1, 12)) for _ in range(3)]
    settings.DUNNING_BATCH_SIZE = 1
    from dunning import tasks

    calls = []

    def broker_down_after_the_first(**kwargs):
        calls.append(kwargs)
        if len(calls) > 1:
            raise OperationalError("Connection refused")
        return tasks.send_chunk.apply(kwargs=kwargs)

    with mock.patch.object(tasks.send_chunk, "delay", side_effect=broker_down_after_the_first):
        run = services.dunning_run_execute(now=now, fan_out=True)
    assert len(calls) == 2  # the first queued; the second failed, so it and the third ran here
    assert (run.sent, run.failed, run.finished_at is not None) == (3, 0, True)
    assert sorted(m.to[0] for m in mail.outbox) == sorted(o.customer_email for o in orders)
    assert Reminder.objects.filter(status="sent").count() == 3


def test_a_chunk_run_twice_sends_nothing_twice_and_counts_once(config, account, now, settings):
    ReminderAssignmentFactory(sales_account=account, level=1)
    OrderFactory(ordered_at=berlin(2026, 9, 1, 12))
    run = services.dunning_run_execute(now=now, fan_out=True)
    chunk = DunningRunChunk.objects.get(run=run)
    services.dunning_chunk_run(chunk.pk)  # a task delivered again
    run.refresh_from_db()
    assert (run.sent, len(mail.outbox), Reminder.objects.count()) == (1, 1, 1)


def test_recover_closes_a_run_whose_chunk_was_left_by_a_dead_worker(config, account, now, settings):
    ReminderAssignmentFactory(sales_account=account, level=1)
    order = OrderFactory(ordered_at=berlin(2026, 9, 1, 12))
    run = DunningRun.objects.create(trigger=DunningRun.Trigger.SCHEDULED, started_at=now)
    DunningRunChunk.objects.create(run=run, level=1, order_ids=[order.pk], queued_at=now, started_at=now)
    later = now + datetime.timedelta(minutes=settings.DUNNING_STALE_PENDING_MINUTES + 1)
    if connection.vendor == "postgresql":
        # no session holds the chunk's advisory lock: its worker is gone, known at once
        assert services.dunning_runs_recover(now=now) == 1
    else:
        assert services.dunning_runs_recover(now=now) == 0  # started just now: its worker may be alive
        assert services.dunning_runs_recover(now=later) == 1  # queued again (eager: worked at once)
    run.refresh_from_db()
    assert run.finished_at is not None and run.sent == 1 and len(mail.outbox) == 1


def test_a_beat_tick_recovers_an_open_run_even_when_the_job_is_not_due(config, account, now, settings):
    from dunning.automation import automation_tick

    ReminderAssignmentFactory(sales_account=account, level=1)
    order = OrderFactory(ordered_at=berlin(2026, 9, 1, 12))
    started = now - datetime.timedelta(minutes=settings.DUNNING_STALE_PENDING_MINUTES + 1)
    run = DunningRun.objects.create(trigger=DunningRun.Trigger.SCHEDULED, started_at=started)
    DunningRunChunk.objects.create(run=run, level=1, order_ids=[order.pk], queued_at=started, started_at=started)
    assert automation_tick(now=now) is None  # the switch is off: no new run
    run.refresh_from_db()
    assert run.finished_at is not None and run.sent == 1 and len(mail.outbox) == 1
