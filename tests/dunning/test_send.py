"""The send service: exactly once, provider failures, retries, a crash after the provider call."""

import datetime

import pytest
from django.core import mail

from dunning import services
from dunning.models import DunningRun, Reminder
from dunning.services import runs, sending
from orders.models import Order, OrderEvent
from tests.factories import EmailTemplateFactory, OrderFactory, ReminderAssignmentFactory, berlin
from tests.fake_esp import ScriptedBackend, connection_refused, http_error, read_timeout


@pytest.fixture(autouse=True)
def scripted(settings):
    settings.EMAIL_BACKEND = "tests.fake_esp.ScriptedBackend"
    settings.DUNNING_SEND_RETRIES = 3
    ScriptedBackend.reset()
    mail.outbox = []
    yield ScriptedBackend
    ScriptedBackend.reset()


@pytest.fixture
def due_orders(config, assignments):
    return [OrderFactory(ordered_at=berlin(2026, 10, 1, 12)) for _ in range(3)]


@pytest.fixture
def send(now):
    """send(orders, level=1, trigger="automatic", **kw): reminders_send for these orders at `now`."""

    def _send(orders, level=1, trigger="automatic", **kw):
        return services.reminders_send(order_ids=[o.id for o in orders], level=level, trigger=trigger, now=now, **kw)

    return _send


def test_sends_once_and_advances_the_order(due_orders, now, send):
    outcome = send(due_orders)
    assert sorted(outcome.sent) == sorted(o.id for o in due_orders)
    assert len(mail.outbox) == 3
    msg = mail.outbox[0]
    order = Order.objects.get(customer_email=msg.to[0])
    assert msg.from_email == "billing@webshop.example"
    assert msg.reply_to == ["support@shop.example"]
    assert order.number in msg.subject
    assert "49,90\xa0€" in msg.body
    assert order.reminders_sent == 1 and order.last_reminder_at == now
    reminder = Reminder.objects.get(order=order)
    assert reminder.status == "sent" and reminder.sent_at == now and reminder.message_id != ""
    assert reminder.subject == msg.subject and reminder.body == msg.body
    assert OrderEvent.objects.filter(order=order, action="reminder_sent").count() == 1
    # sending the same level again does nothing: the orders left level 1
    again = send(due_orders)
    assert again.sent == [] and set(again.skipped.values()) == {services.Skip.NOT_AT_LEVEL}
    assert len(mail.outbox) == 3


def test_paid_order_is_skipped_at_send_time(due_orders, now, send):
    paid = due_orders[0]
    Order.objects.filter(pk=paid.pk).update(paid_at=now - datetime.timedelta(hours=1))
    outcome = send(due_orders)
    assert outcome.skipped == {paid.id: services.Skip.NOT_AT_LEVEL}
    assert len(mail.outbox) == 2
    assert not Reminder.objects.filter(order=paid).exists()


def test_no_email_and_no_template_are_skipped_with_reason(config, assignments, send):
    no_email = OrderFactory(ordered_at=berlin(2026, 10, 1), customer_email="")
    ok = OrderFactory(ordered_at=berlin(2026, 10, 1))
    outcome = send([no_email, ok])
    assert outcome.skipped == {no_email.id: services.Skip.NO_EMAIL}
    assert outcome.sent == [ok.id]
    Reminder.objects.all().delete()
    Order.objects.filter(pk=ok.pk).update(reminders_sent=0, last_reminder_at=None)
    from dunning.models import ReminderAssignment

    ReminderAssignment.objects.filter(level=1).delete()
    outcome = send([ok])
    assert outcome.skipped == {ok.id: services.Skip.NO_TEMPLATE}


def test_language_variant_of_the_assigned_template_is_used(config, account, send):
    ReminderAssignmentFactory(sales_account=account, level=1, template=EmailTemplateFactory(
        name="Erinnerung", language="de", subject="Erinnerung {{ order.number }}"))
    EmailTemplateFactory(name="Erinnerung", language="en", subject="Reminder {{ order.number }}",
                         body="Please pay {{ order.total }} by {{ order.due_date }}.")
    english = OrderFactory(ordered_at=berlin(2026, 10, 1), language="en", number="E1")
    german = OrderFactory(ordered_at=berlin(2026, 10, 1), number="D1")
    send([english, german])
    by_to = {m.to[0]: m for m in mail.outbox}
    assert by_to[english.customer_email].subject == "Reminder E1"
    assert by_to[english.customer_email].body == "Please pay €49.90 by 15 Oct 2026."
    assert by_to[german.customer_email].subject == "Erinnerung D1"


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_transient_errors_are_retried_then_succeed(due_orders, scripted, status, send):
    failures = {"left": 2}

    def script(message):
        if failures["left"]:
            failures["left"] -= 1
            return http_error(status)
        return None

    scripted.script = script
    outcome = send(due_orders[:1])
    assert outcome.sent == [due_orders[0].id]
    assert scripted.calls == 3
    assert Reminder.objects.get().status == "sent"


def test_connection_error_is_retried(due_orders, scripted, send):
    calls = iter([connection_refused(), None])
    scripted.script = lambda m: next(calls)
    outcome = send(due_orders[:1])
    assert outcome.sent == [due_orders[0].id] and scripted.calls == 2


def test_transient_error_that_persists_fails_and_the_order_stays(due_orders, scripted, settings, send):
    scripted.script = lambda m: http_error(503)
    outcome = send(due_orders[:1])
    assert list(outcome.failed) == [due_orders[0].id]
    assert scripted.calls == settings.DUNNING_SEND_RETRIES
    reminder = Reminder.objects.get()
    assert reminder.status == "failed" and "503" in reminder.error
    order = Order.objects.get(pk=due_orders[0].pk)
    assert order.reminders_sent == 0 and order.last_reminder_at is None


def test_permanent_error_fails_at_once(due_orders, scripted, send):
    scripted.script = lambda m: http_error(400)
    outcome = send(due_orders[:1])
    assert list(outcome.failed) == [due_orders[0].id]
    assert scripted.calls == 1
    assert Reminder.objects.get().status == "failed"


def test_read_timeout_is_ambiguous_and_never_resent_automatically(due_orders, scripted, send):
    scripted.script = lambda m: read_timeout()
    outcome = send(due_orders[:1])
    assert outcome.unknown == [due_orders[0].id]
    assert scripted.calls == 1
    reminder = Reminder.objects.get()
    assert reminder.status == "pending" and "Ergebnis unbekannt" in reminder.error  # stored in LANGUAGE_CODE (de)
    scripted.script = None
    later = send(due_orders[:1])
    assert later.skipped == {due_orders[0].id: services.Skip.IN_FLIGHT}
    assert scripted.calls == 1


def test_failed_reminder_is_retried_by_later_runs_at_most_three_times(due_orders, scripted, send):
    order = due_orders[0]
    scripted.script = lambda m: http_error(400)
    for attempt in range(3):
        outcome = send([order])
        assert list(outcome.failed) == [order.id], attempt
    assert Reminder.objects.filter(order=order, status="failed").count() == 3
    scripted.script = None
    fourth = send([order])
    assert fourth.skipped == {order.id: services.Skip.ATTEMPTS_EXHAUSTED}
    # staff may still send it by hand
    manual = send([order], trigger="manual")
    assert manual.sent == [order.id]
    assert Order.objects.get(pk=order.pk).reminders_sent == 1


def test_crash_after_provider_call_leaves_an_in_flight_reminder_never_resent(due_orders, scripted, now, send):
    class WorkerKilled(BaseException):
        """Stands in for SIGKILL: nothing after the provider call runs."""

    def crash(message):
        raise WorkerKilled

    scripted.crash_after_send = crash
    with pytest.raises(WorkerKilled):
        send(due_orders[:1])
    assert len(mail.outbox) == 1
    reminder = Reminder.objects.get()
    assert reminder.status == "pending"
    assert Order.objects.get(pk=due_orders[0].pk).reminders_sent == 0
    scripted.crash_after_send = None
    for trigger in ("automatic", "manual"):
        outcome = send(due_orders[:1], trigger=trigger)
        assert outcome.skipped == {due_orders[0].id: services.Skip.IN_FLIGHT}
    run = services.dunning_run_execute(now=now + datetime.timedelta(days=1))
    assert len(mail.outbox) == 3  # the two others, not the crashed one again
    assert run.sent == 2
    assert Reminder.objects.filter(order=due_orders[0]).count() == 1


def test_provider_down_stops_the_run_and_releases_unsent_claims(config, assignments, scripted, now, settings):
    settings.DUNNING_SEND_CONCURRENCY = 1  # one call at a time: exactly five are tried
    orders = [OrderFactory(ordered_at=berlin(2026, 10, 1)) for _ in range(8)]
    scripted.script = lambda m: http_error(503)
    run = services.dunning_run_execute(now=now)
    assert "Anbieter nicht erreichbar" in run.error
    assert run.failed == 5  # five transient failures in a row open the circuit
    assert Reminder.objects.filter(status="failed").count() == 5
    assert not Reminder.objects.filter(status="pending").exists()  # the other three were withdrawn
    scripted.script = None
    later = services.dunning_run_execute(now=now + datetime.timedelta(hours=1))
    assert later.sent == 8
    assert sorted(Order.objects.values_list("reminders_sent", flat=True)) == [1] * len(orders)


def test_provider_down_with_concurrent_sends_withdraws_what_was_never_handed_over(config, assignments, scripted,
                                                                                   now, settings):
    settings.DUNNING_SEND_CONCURRENCY = 4
    orders = [OrderFactory(ordered_at=berlin(2026, 10, 1)) for _ in range(40)]
    scripted.script = lambda m: http_error(503)
    run = services.dunning_run_execute(now=now)
    assert "Anbieter nicht erreichbar" in run.error
    # the circuit opens after five in a row; what was in flight then finishes, nothing more is handed over
    assert 5 <= run.failed <= 5 + 4 and scripted.calls == run.failed * settings.DUNNING_SEND_RETRIES
    assert Reminder.objects.filter(status="failed").count() == run.failed
    assert not Reminder.objects.filter(status="pending").exists()
    assert not Reminder.objects.filter(status="failed", handed_at=None).exists()
    scripted.script = None
    later = services.dunning_run_execute(now=now + datetime.timedelta(hours=1))
    assert later.sent == len(orders)


def test_one_broken_template_does_not_stop_the_run(config, account, prepayment, now):
    from accounts.models import SalesAccount
    from dunning.models import EmailTemplate
    from tests.factories import DunningConfigFactory, SalesAccountFactory

    ReminderAssignmentFactory(sales_account=account, level=1)
    broken = EmailTemplateFactory(name="Broken", subject="ok")
    EmailTemplate.objects.filter(pk=broken.pk).update(body="{{ order.number ")  # saved before validation
    other = SalesAccountFactory(name="eBay")
    DunningConfigFactory(sales_account=other, payment_method=config.payment_method)
    ReminderAssignmentFactory(sales_account=other, level=1, template=broken)
    good = OrderFactory(ordered_at=berlin(2026, 10, 1))
    bad = OrderFactory(ordered_at=berlin(2026, 10, 1), sales_account=SalesAccount.objects.get(name="eBay"))
    run = services.dunning_run_execute(now=now)
    assert run.sent == 1 and run.failed == 1
    assert Reminder.objects.get(order=good).status == "sent"
    failed = Reminder.objects.get(order=bad)
    assert failed.status == "failed" and "Template" in failed.error
    assert run.details["levels"]["eBay"]["1"]["failed"] == 1


def test_rejected_address_does_not_stop_the_run(due_orders, scripted, now):
    bad = due_orders[1]
    scripted.script = lambda m: http_error(422) if m.to == [bad.customer_email] else None
    run = services.dunning_run_execute(now=now)
    assert run.sent == 2 and run.failed == 1
    assert Reminder.objects.get(order=bad).status == "failed"


def test_subject_line_breaks_never_reach_the_mail(config, account, send):
    template = EmailTemplateFactory(name="Inject", subject="Reminder {{ customer_name }}")
    ReminderAssignmentFactory(sales_account=account, level=1, template=template)
    order = OrderFactory(ordered_at=berlin(2026, 10, 1), customer_name="Eve\r\nBcc: victim@example.com")
    send([order])
    msg = mail.outbox[0]
    assert msg.subject == "Reminder Eve Bcc: victim@example.com"
    assert "\n" not in msg.message()["Subject"]
    assert msg.bcc == []


def test_manual_notify_records_a_run(due_orders, backoffice_user, now):
    run, outcome = services.orders_notify(order_ids=[o.id for o in due_orders], level=1, user=backoffice_user,
                                          now=now)
    assert run.trigger == DunningRun.Trigger.MANUAL and run.sent == 3 and run.finished_at
    assert set(Reminder.objects.values_list("trigger", "sent_by")) == {("manual", backoffice_user.id)}


def test_level_must_be_1_to_3(db, now):
    with pytest.raises(ValueError):
        services.reminders_send(order_ids=[], level=4, trigger="manual", now=now)


def test_address_that_bounced_gets_no_further_reminder_until_corrected(config, assignments, send):
    order = OrderFactory(ordered_at=berlin(2026, 9, 1), reminders_sent=1, last_reminder_at=berlin(2026, 10, 1))
    Reminder.objects.create(order=order, level=1, trigger="automatic", recipient=order.customer_email,
                            subject="s", body="b", status="bounced", created_at=berlin(2026, 10, 1))
    outcome = send([order], level=2)
    assert outcome.skipped == {order.id: services.Skip.BOUNCED}
    assert mail.outbox == []
    Order.objects.filter(pk=order.pk).update(customer_email="corrected@example.com")
    assert send([order], level=2).sent == [order.id]
    assert mail.outbox[0].to == ["corrected@example.com"]


def test_a_level_with_nothing_due_opens_no_mail_connection(config, assignments, monkeypatch, now):
    opened = []
    real = sending.provider_connection

    def counting(*args, **kwargs):
        opened.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(sending, "provider_connection", counting)
    services.dunning_run_execute(now=now)
    assert opened == []
    OrderFactory(ordered_at=berlin(2026, 10, 1))
    services.dunning_run_execute(now=now)
    assert opened == [1]


def test_a_run_that_fails_as_a_whole_is_recorded_as_finished(config, assignments, monkeypatch, now):
    def boom(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(runs, "prepayment_orders_handle", boom)
    with pytest.raises(RuntimeError):
        services.dunning_run_execute(now=now)
    run = DunningRun.objects.get()
    assert run.finished_at is not None and "Lauf abgebrochen: RuntimeError: database went away" in run.error


def test_skip_reasons_cost_a_constant_number_of_queries(config, assignments, django_assert_max_num_queries, now, send):
    """A stale selection of many orders no longer due is diagnosed per chunk, not per order."""
    orders = [OrderFactory(ordered_at=berlin(2026, 10, 1), paid_at=now) for _ in range(40)]
    with django_assert_max_num_queries(12):
        outcome = send(orders)
    assert set(outcome.skipped.values()) == {services.Skip.NOT_AT_LEVEL} and len(outcome.skipped) == 40
