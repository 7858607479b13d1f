"""The scheduled tick (switch, interval, lease) and the support-only admin of the switch."""

import datetime
import re

import pytest
from django.urls import reverse

from dunning import automation, tasks
from dunning.automation import automation_status, automation_tick, automation_update
from dunning.models import AutomationChange, DunningAutomation, DunningRun
from tests.factories import OrderFactory, berlin

MIN = datetime.timedelta(minutes=1)
CHANGE_URL = "/admin/dunning/dunningautomation/1/change/"
LIST_URL = "/admin/dunning/dunningautomation/"


def switch(enabled=True, interval=60, **fields) -> DunningAutomation:
    DunningAutomation.objects.get_or_create(pk=1)
    DunningAutomation.objects.filter(pk=1).update(enabled=enabled, interval_minutes=interval, **fields)
    return DunningAutomation.objects.get(pk=1)


@pytest.fixture
def due_order(config, assignments):
    return OrderFactory(ordered_at=berlin(2026, 11, 5, 12))  # 7 days overdue on 26.11.: level 1


# --- the tick -------------------------------------------------------------------------------

def test_off_gives_nothing(due_order, now, mailoutbox):
    switch(enabled=False)
    assert automation_tick(now=now) is None
    assert not DunningRun.objects.exists()
    assert mailoutbox == []
    assert DunningAutomation.objects.get(pk=1).last_scheduled_run_at is None


def test_on_runs_once_per_interval(due_order, now, mailoutbox):
    switch(enabled=True, interval=60)
    run = automation_tick(now=now)
    assert run is not None and run.trigger == DunningRun.Trigger.SCHEDULED and run.sent == 1
    assert len(mailoutbox) == 1
    state = DunningAutomation.objects.get(pk=1)
    assert state.last_scheduled_run_at == now
    assert state.lease_owner == "" and state.lease_expires_at is None  # released after the run

    assert automation_tick(now=now + 1 * MIN) is None
    assert automation_tick(now=now + 59 * MIN) is None
    assert DunningRun.objects.count() == 1

    second = automation_tick(now=now + 60 * MIN)
    assert second is not None and second.sent == 0  # nothing new due, but the job ran
    assert DunningRun.objects.count() == 2
    assert automation_tick(now=now + 61 * MIN) is None


def test_first_tick_after_switching_on_runs_at_once(due_order, now):
    switch(enabled=True, interval=60, last_scheduled_run_at=now - datetime.timedelta(days=30))
    assert automation_tick(now=now) is not None


def test_tick_landing_just_before_the_due_time_runs(due_order, now, settings):
    settings.DUNNING_TICK_SECONDS = 60
    switch(enabled=True, interval=60, last_scheduled_run_at=now)
    later = now + 60 * MIN - datetime.timedelta(seconds=2)  # beat drift: within the grace
    assert automation_tick(now=later) is not None


def test_changed_interval_is_honoured_at_the_next_tick(due_order, now, support_user):
    switch(enabled=True, interval=60)
    assert automation_tick(now=now) is not None
    assert automation_tick(now=now + 10 * MIN) is None
    automation_update(enabled=True, interval_minutes=10, user=support_user, now=now + 11 * MIN)
    assert automation_tick(now=now + 11 * MIN) is not None  # 11 >= 10 minutes since the last run
    assert automation_tick(now=now + 15 * MIN) is None
    automation_update(enabled=False, interval_minutes=10, user=support_user, now=now + 16 * MIN)
    assert automation_tick(now=now + 30 * MIN) is None
    automation_update(enabled=True, interval_minutes=10, user=support_user, now=now + 31 * MIN)
    assert automation_tick(now=now + 31 * MIN) is not None
    assert DunningRun.objects.filter(trigger=DunningRun.Trigger.SCHEDULED).count() == 3


def test_live_lease_is_respected(due_order, now, mailoutbox):
    switch(enabled=True, lease_owner="other-run", lease_expires_at=now + 5 * MIN)
    assert automation_tick(now=now) is None
    state = DunningAutomation.objects.get(pk=1)
    assert state.lease_owner == "other-run" and state.lease_expires_at == now + 5 * MIN
    assert not DunningRun.objects.exists() and mailoutbox == []


def test_expired_lease_is_taken_over(due_order, now):
    switch(enabled=True, last_scheduled_run_at=now - 90 * MIN, lease_owner="crashed-run",
           lease_expires_at=now - 1 * MIN)
    run = automation_tick(now=now)
    assert run is not None and run.sent == 1
    state = DunningAutomation.objects.get(pk=1)
    assert state.lease_owner == "" and state.last_scheduled_run_at == now


def test_lease_is_held_while_the_job_runs(due_order, now, monkeypatch, settings):
    settings.DUNNING_LEASE_MINUTES = 30
    switch(enabled=True, interval=1)
    seen = {}

    def fake_execute(*, now, trigger, fan_out):
        state = DunningAutomation.objects.get(pk=1)
        seen["owner"], seen["expires"] = state.lease_owner, state.lease_expires_at
        # an overlapping tick (another beat, a redelivered message) long after the interval
        seen["overlap"] = automation_tick(now=now + 20 * MIN)
        return DunningRun.objects.create(trigger=trigger, started_at=now, finished_at=now)

    monkeypatch.setattr(automation, "dunning_run_execute", fake_execute)
    assert automation_tick(now=now) is not None
    assert seen["owner"] and seen["expires"] == now + 30 * MIN
    assert seen["overlap"] is None
    assert DunningAutomation.objects.get(pk=1).lease_owner == ""


def test_crashed_run_releases_the_lease_and_records_the_error(due_order, now, monkeypatch):
    switch(enabled=True)

    def crashing_execute(*, now, trigger, fan_out):
        DunningRun.objects.create(trigger=trigger, started_at=now)
        raise RuntimeError("database went away")

    monkeypatch.setattr(automation, "dunning_run_execute", crashing_execute)
    with pytest.raises(RuntimeError):
        automation_tick(now=now)
    run = DunningRun.objects.get()
    assert run.finished_at is not None and "database went away" in run.error
    assert DunningAutomation.objects.get(pk=1).lease_owner == ""


def test_lease_renew_and_release_only_when_ours(db, now):
    switch(enabled=True, lease_owner="mine", lease_expires_at=now + MIN)
    assert automation.lease_renew(owner="mine", now=now + 10 * MIN)
    assert DunningAutomation.objects.get(pk=1).lease_expires_at == now + 10 * MIN + automation.lease_duration()
    assert not automation.lease_renew(owner="theirs", now=now)
    assert not automation.lease_release(owner="theirs")
    assert DunningAutomation.objects.get(pk=1).lease_owner == "mine"
    assert automation.lease_release(owner="mine")
    assert DunningAutomation.objects.get(pk=1).lease_owner == ""


def test_tick_creates_a_missing_singleton(db, now):
    DunningAutomation.objects.all().delete()
    assert automation_tick(now=now) is None
    assert DunningAutomation.objects.filter(pk=1, enabled=False).exists()


def test_tasks_call_the_services(due_order, now):
    switch(enabled=True)
    run_id = tasks.automation_tick.apply().get()
    assert DunningRun.objects.get(pk=run_id).trigger == DunningRun.Trigger.SCHEDULED
    assert tasks.automation_tick.apply().get() is None  # within the interval
    run_id = tasks.run_dunning_job.apply(args=[DunningRun.Trigger.COMMAND]).get()
    assert DunningRun.objects.get(pk=run_id).trigger == DunningRun.Trigger.COMMAND


def test_status(db, now):
    off = automation_status(now=now, automation=switch(enabled=False))
    assert not off.enabled and off.next_run_at is None and not off.due_now and not off.lease_held
    fresh = automation_status(now=now, automation=switch(enabled=True, interval=30))
    assert fresh.due_now and fresh.next_run_at is None
    waiting = automation_status(now=now, automation=switch(enabled=True, interval=30,
                                                           last_scheduled_run_at=now - 10 * MIN))
    assert not waiting.due_now and waiting.next_run_at == now + 20 * MIN
    running = automation_status(now=now, automation=switch(
        enabled=True, interval=30, last_scheduled_run_at=now - 10 * MIN, lease_owner="x",
        lease_expires_at=now + 20 * MIN))
    assert running.lease_held and running.lease_since == now - 10 * MIN and not running.lease_stale
    stale = automation_status(now=now, automation=switch(
        enabled=True, interval=30, last_scheduled_run_at=now - 60 * MIN, lease_owner="x",
        lease_expires_at=now - 30 * MIN))
    assert stale.lease_stale and not stale.lease_held and stale.due_now


# --- changing the switch -----------------------------------------------------------------------

def test_update_records_every_change(support_user, now):
    switch(enabled=False, interval=60)
    automation_update(enabled=True, interval_minutes=15, user=support_user, now=now)
    automation_update(enabled=True, interval_minutes=15, user=support_user, now=now + MIN)  # no change
    automation_update(enabled=False, interval_minutes=15, user=support_user, now=now + 2 * MIN)
    changes = list(AutomationChange.objects.order_by("changed_at"))
    assert [(c.old, c.new) for c in changes] == [
        ({"enabled": False, "interval_minutes": 60}, {"enabled": True, "interval_minutes": 15}),
        ({"enabled": True, "interval_minutes": 15}, {"enabled": False, "interval_minutes": 15}),
    ]
    assert all(c.changed_by == support_user for c in changes)
    state = DunningAutomation.objects.get(pk=1)
    assert state.changed_by == support_user and state.changed_at == now + 2 * MIN


def test_update_rejects_a_bad_interval(support_user, now):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        automation_update(enabled=True, interval_minutes=0, user=support_user, now=now)
    assert not AutomationChange.objects.exists()


# --- the admin: support staff only ---------------------------------------------------------------

@pytest.fixture
def en_client(client):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


@pytest.mark.parametrize("url", [LIST_URL, CHANGE_URL, "/admin/dunning/dunningautomation/1/history/",
                                 "/admin/dunning/dunningautomation/add/", "/admin/dunning/automationchange/"])
def test_staff_get_403(en_client, backoffice_user, outsider_user, url):
    for user in (backoffice_user, outsider_user):
        en_client.force_login(user)
        assert en_client.get(url).status_code == 403


def test_staff_cannot_post_the_switch(en_client, backoffice_user):
    switch(enabled=False)
    en_client.force_login(backoffice_user)
    response = en_client.post(CHANGE_URL, {"enabled": "on", "interval_minutes": "5", "_save": "1"})
    assert response.status_code == 403
    assert not DunningAutomation.objects.get(pk=1).enabled
    assert not AutomationChange.objects.exists()


def test_switch_not_on_the_index_for_staff(en_client, backoffice_user, support_user):
    en_client.force_login(backoffice_user)
    index = en_client.get("/admin/").content.decode()
    assert "dunningconfig" in index  # the back office sees its own models ...
    assert "dunningautomation" not in index and "automationchange" not in index  # ... but not the switch
    en_client.force_login(support_user)
    assert "dunningautomation" in en_client.get("/admin/").content.decode()


def test_changelist_redirects_superuser_to_the_singleton(en_client, support_user):
    DunningAutomation.objects.all().delete()
    en_client.force_login(support_user)
    response = en_client.get(LIST_URL, follow=True)
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == CHANGE_URL
    assert DunningAutomation.objects.filter(pk=1).exists()
    assert reverse("admin:dunning_dunningautomation_changelist") == LIST_URL


def test_superuser_switches_and_every_change_is_recorded(en_client, support_user):
    switch(enabled=False, interval=60)
    en_client.force_login(support_user)
    # switching on shows the first run's preview first and saves nothing (issue 18)
    response = en_client.post(CHANGE_URL, {"enabled": "on", "interval_minutes": "15", "_save": "1"})
    assert response.status_code == 200 and "Yes, switch on" in response.content.decode()
    assert not DunningAutomation.objects.get(pk=1).enabled and not AutomationChange.objects.exists()
    response = en_client.post(CHANGE_URL, {"enabled": "on", "interval_minutes": "15", "_save": "1", "confirmed": "1"})
    assert response.status_code == 302
    state = DunningAutomation.objects.get(pk=1)
    assert state.enabled and state.interval_minutes == 15
    assert state.changed_by == support_user and state.changed_at is not None
    change = AutomationChange.objects.get()
    assert change.changed_by == support_user
    assert change.old == {"enabled": False, "interval_minutes": 60}
    assert change.new == {"enabled": True, "interval_minutes": 15}

    en_client.post(CHANGE_URL, {"enabled": "on", "interval_minutes": "15", "_save": "1"})  # unchanged
    assert AutomationChange.objects.count() == 1
    en_client.post(CHANGE_URL, {"interval_minutes": "15", "_save": "1"})  # off
    assert AutomationChange.objects.count() == 2
    assert AutomationChange.objects.first().new == {"enabled": False, "interval_minutes": 15}
    assert not DunningAutomation.objects.get(pk=1).enabled


def test_invalid_interval_is_refused_in_the_admin(en_client, support_user):
    switch(enabled=False, interval=60)
    en_client.force_login(support_user)
    response = en_client.post(CHANGE_URL, {"enabled": "on", "interval_minutes": "0", "_save": "1"})
    assert response.status_code == 200 and response.context["errors"]
    assert not AutomationChange.objects.exists()


def test_change_page_shows_history_runs_next_run_and_lease(en_client, support_user, now):
    switch(enabled=False)
    en_client.force_login(support_user)
    page = en_client.get(CHANGE_URL).content.decode()
    assert 'id="automation-next-run"' in page and "off" in page.split('id="automation-next-run"')[1][:80]

    automation_update(enabled=True, interval_minutes=45, user=support_user, now=now)
    DunningRun.objects.create(trigger=DunningRun.Trigger.SCHEDULED, started_at=now, finished_at=now, sent=7,
                              duration_ms=1234, error="level 1: provider unavailable")
    page = en_client.get(CHANGE_URL).content.decode()
    assert "level 1: provider unavailable" in page and "1.2 s" in page
    changes = page.split('id="automation-changes"')[1]
    assert "support" in changes and "45 min" in changes
    assert "at the next tick" in page  # never ran on schedule: due now

    import django.utils.timezone as tz

    real_now = tz.now()
    switch(enabled=True, interval=45, last_scheduled_run_at=real_now - 5 * MIN, lease_owner="x",
           lease_expires_at=real_now + 25 * MIN)
    page = en_client.get(CHANGE_URL).content.decode()
    assert "A run is in progress since" in page
    switch(enabled=True, interval=45, last_scheduled_run_at=real_now - 5 * MIN)
    response = en_client.get(CHANGE_URL)
    assert response.context["status"].next_run_at == real_now + 40 * MIN


def test_only_the_last_20_runs_are_listed(en_client, support_user, now):
    DunningRun.objects.bulk_create([DunningRun(trigger="scheduled", started_at=now - i * MIN) for i in range(25)])
    en_client.force_login(support_user)
    assert len(en_client.get(CHANGE_URL).context["runs"]) == 20


# --- the switch shows the activation preview first (issue 18, item 2) ---------------------------------


@pytest.fixture
def due_orders(db):
    """Webshop/invoice, level 1 sent automatically: two orders due at level 1, one at level 2 (by hand)."""
    from django.utils import timezone as tz

    from dunning.models import ReminderAssignment
    from dunning.selectors import local_midnight, local_today
    from tests.factories import DunningConfigFactory, PaymentMethodFactory, ReminderFactory, SalesAccountFactory

    account = SalesAccountFactory(name="Webshop")
    invoice = PaymentMethodFactory(code="invoice", name="Rechnung", payment_term_days=14)
    DunningConfigFactory(sales_account=account, payment_method=invoice)
    from tests.factories import ReminderAssignmentFactory

    for level in (1, 2, 3):
        ReminderAssignmentFactory(sales_account=account, level=level, send_automatically=level == 1)
    assert ReminderAssignment.objects.filter(send_automatically=True).count() == 1
    today = local_today(tz.now())
    at = local_midnight(today - datetime.timedelta(days=40)) + datetime.timedelta(hours=12)
    for i in range(2):
        OrderFactory(sales_account=account, payment_method=invoice, ordered_at=at, number=f"D{i}")
    last = local_midnight(today - datetime.timedelta(days=10))
    order = OrderFactory(sales_account=account, payment_method=invoice, ordered_at=at, number="D2",
                         reminders_sent=1, last_reminder_at=last)
    ReminderFactory(order=order, level=1, created_at=last, sent_at=last)


def test_switching_on_shows_what_the_first_run_would_do_then_saves_on_yes(client, support_user, due_orders):
    switch(enabled=False, interval=60)
    client.force_login(support_user)
    response = client.post(CHANGE_URL, {"enabled": "on", "interval_minutes": "15", "_save": "1"})
    html = response.content.decode()
    assert response.status_code == 200
    assert "Sie schalten den automatischen Lauf ein (alle 15 Minuten)" in html
    assert "2 Mahnungen fällig zum automatischen Versand" in html
    assert "1 fällig, nur von Hand" in html
    assert "/orders/open-payments/?dunning_level=1&amp;sales_account=" in html
    assert "Ja, einschalten" in html
    assert not DunningAutomation.objects.get(pk=1).enabled and not AutomationChange.objects.exists()
    response = client.post(CHANGE_URL, {"enabled": "on", "interval_minutes": "15", "_save": "1", "confirmed": "1"})
    assert response.status_code == 302 and DunningAutomation.objects.get(pk=1).enabled


def test_shortening_the_interval_asks_first_lengthening_does_not(client, support_user, due_orders):
    switch(enabled=True, interval=60)
    client.force_login(support_user)
    response = client.post(CHANGE_URL, {"enabled": "on", "interval_minutes": "5", "_save": "1"})
    assert response.status_code == 200 and "von 60 auf 5 Minuten" in response.content.decode()
    assert DunningAutomation.objects.get(pk=1).interval_minutes == 60
    response = client.post(CHANGE_URL, {"enabled": "on", "interval_minutes": "90", "_save": "1"})
    assert response.status_code == 302 and DunningAutomation.objects.get(pk=1).interval_minutes == 90


def test_the_preview_lists_the_team_notices_the_first_run_would_send(client, support_user, due_orders):
    """Prepayment orders past their days: Webshop flags (notice to its team), eBay cancels but has no
    team address (no notice; the preview says so before "Ja, einschalten")."""
    from django.utils import timezone as tz

    from dunning.models import DunningConfig
    from tests.factories import DunningConfigFactory, PaymentMethodFactory, SalesAccountFactory

    prepayment = PaymentMethodFactory(code="prepayment", name="Vorkasse", is_prepayment=True)
    webshop = SalesAccountFactory._meta.model.objects.get(name="Webshop")
    ebay = SalesAccountFactory(name="eBay", team_email="")
    DunningConfigFactory(sales_account=webshop, payment_method=prepayment, cancel_after_days=10,
                         cancellation_action=DunningConfig.CancellationAction.FLAG)
    DunningConfigFactory(sales_account=ebay, payment_method=prepayment, cancel_after_days=10,
                         cancellation_action=DunningConfig.CancellationAction.CANCEL)
    old = tz.now() - datetime.timedelta(days=20)
    for i in range(3):
        OrderFactory(sales_account=webshop, payment_method=prepayment, ordered_at=old, number=f"V{i}")
    for i in range(1001, 1003):
        OrderFactory(sales_account=ebay, payment_method=prepayment, ordered_at=old, number=f"E{i}")
    switch(enabled=False, interval=60)
    client.force_login(support_user)
    response = client.post(CHANGE_URL, {"enabled": "on", "interval_minutes": "15", "_save": "1"})
    notices = response.content.decode().split('id="automation-team-notices"')[1].split("</table>")[0]
    text = " ".join(re.sub(r"<[^>]+>", " ", notices).split())
    assert "2 Hinweise an die Teams der Verkaufskanäle" in text
    assert "Webshop team@shop.example 3 Aufträge zur Stornierung markiert" in text
    assert "eBay Keine Team-E-Mail-Adresse hinterlegt: Es wird kein Hinweis gesendet" in text
    assert "2 Aufträge storniert" in text
    assert f"/orders/open-payments/?sales_account={ebay.pk}" in notices
    assert not DunningAutomation.objects.get(pk=1).enabled
