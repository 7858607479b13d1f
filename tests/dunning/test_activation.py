"""Activation safety: what the job would do at once when a config is activated or widened, and the
admin's intermediate confirmation page."""

import datetime
from decimal import Decimal

import pytest

from dunning.activation import (
    activation_preview,
    assignment_preview,
    assignment_widening_reasons,
    config_widening_reasons,
)
from dunning.models import DunningConfig, ReminderAssignment
from tests.factories import DunningConfigFactory, OrderFactory, berlin


def counts(preview) -> list[int]:
    return [lp.count for lp in preview.levels]


@pytest.fixture
def inactive_config(config):
    config.is_active = False
    config.save()
    return config


@pytest.fixture
def due_orders(inactive_config, assignments):
    """Invoice orders (term 14 days) at 26.11.2026: two at level 1, one at 2, one at 3."""
    return {
        "l1_new": OrderFactory(ordered_at=berlin(2026, 11, 5, 12)),
        "l1_old": OrderFactory(ordered_at=berlin(2026, 10, 20, 12)),
        "l2": OrderFactory(ordered_at=berlin(2026, 10, 20, 12), reminders_sent=1,
                           last_reminder_at=berlin(2026, 11, 10, 9)),
        "l3": OrderFactory(ordered_at=berlin(2026, 10, 1, 12), reminders_sent=2,
                           last_reminder_at=berlin(2026, 11, 15, 9)),
        "not_yet": OrderFactory(ordered_at=berlin(2026, 11, 20, 12)),
        "paid": OrderFactory(ordered_at=berlin(2026, 10, 1, 12), paid_at=berlin(2026, 10, 2, 12)),
        "blocked": OrderFactory(ordered_at=berlin(2026, 10, 1, 12), dunning_blocked=True),
    }


@pytest.fixture
def prepayment_config(account, prepayment):
    return DunningConfigFactory(sales_account=account, payment_method=prepayment, is_active=False,
                                cancel_after_days=10, cancellation_action=DunningConfig.CancellationAction.FLAG)


@pytest.fixture
def prepayment_orders(prepayment_config, prepayment):
    return {
        "old": OrderFactory(payment_method=prepayment, ordered_at=berlin(2026, 11, 10, 12)),  # 16 days
        "flagged": OrderFactory(payment_method=prepayment, ordered_at=berlin(2026, 11, 1, 12),
                                flagged_for_cancellation_at=berlin(2026, 11, 20, 8)),
        "young": OrderFactory(payment_method=prepayment, ordered_at=berlin(2026, 11, 24, 12)),
    }


# --- the selector ----------------------------------------------------------------------------

def test_preview_counts_per_level_for_the_unsaved_config(due_orders, inactive_config, now):
    preview = activation_preview(inactive_config, now=now)
    assert counts(preview) == [2, 1, 1]
    assert [lp.current for lp in preview.levels] == [None, None, None]  # not active now
    assert all(lp.automatic for lp in preview.levels)
    assert preview.reminders_at_once == 4
    assert preview.cancellation_count == 0
    assert preview.levels[0].url == (f"/orders/open-payments/?dunning_level=1&sales_account="
                                     f"{inactive_config.sales_account_id}&payment_method="
                                     f"{inactive_config.payment_method_id}")
    inactive_config.refresh_from_db()
    assert not inactive_config.is_active  # the preview changes nothing


def test_preview_honours_only_orders_since_and_other_unsaved_values(due_orders, inactive_config, now):
    inactive_config.only_orders_since = datetime.date(2026, 11, 1)
    assert counts(activation_preview(inactive_config, now=now)) == [1, 0, 0]
    inactive_config.only_orders_since = None
    inactive_config.minimum_amount = Decimal("100")
    assert counts(activation_preview(inactive_config, now=now)) == [0, 0, 0]
    inactive_config.minimum_amount = Decimal("0")
    inactive_config.level_1_days = 30  # neither level-1 order is 30 days overdue
    assert counts(activation_preview(inactive_config, now=now)) == [0, 1, 1]


def test_preview_compares_with_the_saved_active_config(due_orders, inactive_config, now):
    saved = DunningConfig.objects.select_related("payment_method", "sales_account").get(pk=inactive_config.pk)
    saved.is_active = True
    saved.level_1_days = 10  # only the older level-1 order is due now
    new = DunningConfig.objects.select_related("payment_method", "sales_account").get(pk=inactive_config.pk)
    new.is_active = True
    new.level_1_days = 5
    preview = activation_preview(new, now=now, current=saved)
    assert counts(preview) == [2, 1, 1]
    assert [lp.current for lp in preview.levels] == [1, 1, 1]


def test_preview_only_counts_levels_sent_automatically_as_at_once(due_orders, inactive_config, assignments, now):
    ReminderAssignment.objects.filter(level__in=[2, 3]).update(send_automatically=False)
    preview = activation_preview(inactive_config, now=now)
    assert [lp.automatic for lp in preview.levels] == [True, False, False]
    assert preview.reminders_due == 4 and preview.reminders_at_once == 2


def test_preview_counts_prepayment_orders_to_flag_and_cancel(prepayment_orders, prepayment_config, now):
    preview = activation_preview(prepayment_config, now=now)
    assert preview.cancellation_count == 1  # the already flagged one is not flagged again
    assert counts(preview) == [2, 0, 0]  # and both old ones are at level 1 (term 0)
    prepayment_config.cancellation_action = DunningConfig.CancellationAction.CANCEL
    assert activation_preview(prepayment_config, now=now).cancellation_count == 2
    prepayment_config.only_orders_since = datetime.date(2026, 11, 5)
    assert activation_preview(prepayment_config, now=now).cancellation_count == 1
    prepayment_config.cancel_after_days = 20
    assert activation_preview(prepayment_config, now=now).cancellation_count == 0


def test_preview_of_the_job_matches_what_the_job_does(due_orders, prepayment_orders, inactive_config,
                                                      prepayment_config, now, mailoutbox):
    from dunning.services import dunning_run_execute

    previews = [activation_preview(c, now=now) for c in (inactive_config, prepayment_config)]
    DunningConfig.objects.update(is_active=True)
    run = dunning_run_execute(now=now)
    assert run.sent == sum(p.reminders_at_once for p in previews)
    assert run.flagged == sum(p.cancellation_count for p in previews)


def test_widening_reasons(config):
    def changed(**values):
        new = DunningConfig.objects.get(pk=config.pk)
        for key, value in values.items():
            setattr(new, key, value)
        return new

    old = DunningConfig.objects.get(pk=config.pk)
    assert config_widening_reasons(old, changed()) == []
    assert config_widening_reasons(old, changed(level_1_days=8, level_2_days=20)) == []  # later: fine
    assert len(config_widening_reasons(old, changed(level_1_days=3))) == 1
    assert len(config_widening_reasons(old, changed(level_2_days=10, level_3_days=12))) == 2
    assert config_widening_reasons(old, changed(min_days_between_reminders=3))
    assert config_widening_reasons(old, changed(minimum_amount=Decimal("-1")))
    assert config_widening_reasons(old, changed(cancel_after_days=10))  # none -> 10 is earlier
    assert config_widening_reasons(old, changed(is_active=False, level_1_days=1)) == []  # stays inactive
    old.is_active = False
    assert config_widening_reasons(old, changed()) != []  # activated
    assert config_widening_reasons(None, changed()) != []  # added active
    old.is_active = True
    old.only_orders_since = datetime.date(2026, 11, 1)
    assert config_widening_reasons(old, changed(only_orders_since=None))
    assert config_widening_reasons(old, changed(only_orders_since=datetime.date(2026, 10, 1)))
    assert config_widening_reasons(old, changed(only_orders_since=datetime.date(2026, 11, 2))) == []
    old.cancel_after_days = 10
    assert config_widening_reasons(old, changed(cancel_after_days=5, only_orders_since=old.only_orders_since))
    assert config_widening_reasons(old, changed(cancel_after_days=15, only_orders_since=old.only_orders_since)) == []
    assert config_widening_reasons(old, changed(cancel_after_days=10, only_orders_since=old.only_orders_since,
                                                cancellation_action="cancel"))


def test_assignment_reasons_and_preview(due_orders, inactive_config, assignments, now):
    first = assignments[0]
    off = ReminderAssignment(sales_account=first.sales_account, level=1, template=first.template,
                             send_automatically=False)
    assert assignment_widening_reasons(off, first) and not assignment_widening_reasons(first, off)
    assert not assignment_widening_reasons(first, first)
    assert assignment_preview(first, now=now).rows == []  # no active config yet
    DunningConfig.objects.update(is_active=True)
    preview = assignment_preview(first, now=now)
    assert preview.total == 2 and "dunning_level=1" in preview.rows[0][2]


# --- the admin --------------------------------------------------------------------------------

def form_data(config: DunningConfig, **changes) -> dict:
    data = {
        "sales_account": config.sales_account_id, "payment_method": config.payment_method_id,
        "level_1_days": config.level_1_days, "level_2_days": config.level_2_days,
        "level_3_days": config.level_3_days, "min_days_between_reminders": config.min_days_between_reminders,
        "minimum_amount": str(config.minimum_amount),
        "only_orders_since": config.only_orders_since.isoformat() if config.only_orders_since else "",
        "cancel_after_days": "" if config.cancel_after_days is None else config.cancel_after_days,
        "cancellation_action": config.cancellation_action, "_save": "Save",
        "level_1_fee": str(config.level_1_fee), "level_2_fee": str(config.level_2_fee),
        "level_3_fee": str(config.level_3_fee), "payment_deadline_days": config.payment_deadline_days,
    }
    for flag in ("charge_flat_fee_b2b", "charge_interest"):
        if getattr(config, flag):
            data[flag] = "on"
    if config.is_active:
        data["is_active"] = "on"
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def url(config) -> str:
    return f"/admin/dunning/dunningconfig/{config.pk}/change/"


@pytest.fixture
def staff(client, backoffice_user):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    client.force_login(backoffice_user)
    return client


def test_activating_shows_the_confirmation_and_needs_a_second_post(staff, due_orders, inactive_config):
    response = staff.post(url(inactive_config), form_data(inactive_config, is_active="on"))
    assert response.status_code == 200
    assert "admin/dunning/dunningconfig/activation_confirmation.html" in [t.name for t in response.templates]
    assert counts(response.context["preview"]) == [2, 1, 1]
    page = response.content.decode()
    assert 'name="confirmed" value="1"' in page and 'name="only_orders_since"' in page
    assert f"/orders/open-payments/?dunning_level=2&amp;sales_account={inactive_config.sales_account_id}" in page
    inactive_config.refresh_from_db()
    assert not inactive_config.is_active  # nothing saved yet

    confirm = form_data(inactive_config, is_active="on", confirmed="1",
                        preview_of=response.context["fingerprint"])
    response = staff.post(url(inactive_config), confirm)
    assert response.status_code == 302
    inactive_config.refresh_from_db()
    assert inactive_config.is_active


def test_only_orders_since_set_on_the_confirmation_page(staff, due_orders, inactive_config):
    first = staff.post(url(inactive_config), form_data(inactive_config, is_active="on"))
    fingerprint = first.context["fingerprint"]
    # the user sets the date on the confirmation page and confirms: the figures are recalculated first
    data = form_data(inactive_config, is_active="on", only_orders_since="2026-11-01", confirmed="1",
                     preview_of=fingerprint)
    second = staff.post(url(inactive_config), data)
    assert second.status_code == 200 and second.context["recalculated"]
    assert counts(second.context["preview"]) == [1, 0, 0]
    inactive_config.refresh_from_db()
    assert not inactive_config.is_active
    data["preview_of"] = second.context["fingerprint"]
    assert staff.post(url(inactive_config), data).status_code == 302
    inactive_config.refresh_from_db()
    assert inactive_config.is_active and inactive_config.only_orders_since == datetime.date(2026, 11, 1)


def test_recalculate_button_never_saves(staff, due_orders, inactive_config):
    first = staff.post(url(inactive_config), form_data(inactive_config, is_active="on"))
    data = form_data(inactive_config, is_active="on", confirmed="1", preview_of=first.context["fingerprint"],
                     recalculate="1")
    assert staff.post(url(inactive_config), data).status_code == 200
    inactive_config.refresh_from_db()
    assert not inactive_config.is_active


def test_lowering_days_of_an_active_config_needs_confirmation(staff, due_orders, inactive_config):
    DunningConfig.objects.filter(pk=inactive_config.pk).update(is_active=True)
    inactive_config.refresh_from_db()
    response = staff.post(url(inactive_config), form_data(inactive_config, level_1_days=3))
    assert response.status_code == 200 and response.context["reasons"]
    assert [lp.current for lp in response.context["preview"].levels] == [2, 1, 1]
    inactive_config.refresh_from_db()
    assert inactive_config.level_1_days == 7


def test_harmless_changes_save_directly(staff, due_orders, inactive_config):
    response = staff.post(url(inactive_config), form_data(inactive_config, level_3_days=30))  # inactive
    assert response.status_code == 302
    DunningConfig.objects.filter(pk=inactive_config.pk).update(is_active=True)
    inactive_config.refresh_from_db()
    response = staff.post(url(inactive_config), form_data(inactive_config, level_3_days=40,
                                                          only_orders_since="2026-11-01"))  # narrower
    assert response.status_code == 302
    inactive_config.refresh_from_db()
    assert inactive_config.level_3_days == 40


def test_invalid_form_shows_errors_not_the_preview(staff, due_orders, inactive_config):
    response = staff.post(url(inactive_config), form_data(inactive_config, is_active="on", level_2_days=3))
    assert response.status_code == 200
    assert "preview" not in response.context
    assert response.context["errors"]


def test_adding_an_active_config_needs_confirmation(staff, account, prepayment, prepayment_orders):
    DunningConfig.objects.all().delete()
    blank = DunningConfig(sales_account=account, payment_method=prepayment, is_active=True, cancel_after_days=10)
    response = staff.post("/admin/dunning/dunningconfig/add/", form_data(blank))
    assert response.status_code == 200
    assert response.context["preview"].cancellation_count == 1
    assert "prepayment order" in response.content.decode()
    assert not DunningConfig.objects.exists()
    confirm = form_data(blank, confirmed="1", preview_of=response.context["fingerprint"])
    assert staff.post("/admin/dunning/dunningconfig/add/", confirm).status_code == 302
    assert DunningConfig.objects.get().is_active


def test_switching_an_assignment_to_automatic_needs_confirmation(staff, due_orders, inactive_config, assignments):
    DunningConfig.objects.update(is_active=True)
    first = assignments[0]
    ReminderAssignment.objects.filter(pk=first.pk).update(send_automatically=False)
    target = f"/admin/dunning/reminderassignment/{first.pk}/change/"
    data = {"sales_account": first.sales_account_id, "level": 1, "template": first.template_id,
            "send_automatically": "on", "_save": "Save"}
    response = staff.post(target, data)
    assert response.status_code == 200 and response.context["preview"].total == 2
    assert not ReminderAssignment.objects.get(pk=first.pk).send_automatically
    data.update(confirmed="1", preview_of=response.context["fingerprint"])
    assert staff.post(target, data).status_code == 302
    assert ReminderAssignment.objects.get(pk=first.pk).send_automatically


def test_staff_without_permission_sees_no_preview(client, outsider_user, due_orders, inactive_config):
    client.force_login(outsider_user)
    response = client.post(url(inactive_config), form_data(inactive_config, is_active="on"))
    assert response.status_code == 403
