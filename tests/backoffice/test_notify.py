"""Notify: refused without a level, a confirmation page that shows counts and a preview and sends
nothing, then sending on POST (inline or as a Celery task), with skipped orders reported."""

from unittest import mock

import pytest
from django.utils import timezone
from kombu.exceptions import OperationalError

from dunning.models import DunningRun, DunningRunChunk, Reminder
from tests.factories import OrderFactory, ReminderAssignmentFactory, SalesAccountFactory

URL = "/orders/open-payments/"
NOTIFY = URL + "notify/"


@pytest.fixture
def level1(place, assignments):
    return [place(10, number=f"A{i}") for i in range(3)]


# --- refused without a level ------------------------------------------------------------------------


@pytest.mark.parametrize("params", [{}, {"dunning_level": "completed"}, {"dunning_level": "4"}, {"dunning_level": "x"}])
def test_refused_without_level_1_2_3(bo_client, level1, mailoutbox, params):
    ids = {"ids": [o.pk for o in level1]}
    assert bo_client.get(NOTIFY, {**params, **ids}).status_code == 400
    assert bo_client.post(NOTIFY, {**params, **ids}).status_code == 400
    assert bo_client.post(NOTIFY, {**params, "select_across": "1"}).status_code == 400
    assert mailoutbox == []
    assert not Reminder.objects.exists()


def test_get_is_refused_for_outsiders(client, outsider_user, level1, mailoutbox):
    client.force_login(outsider_user)
    response = client.post(NOTIFY, {"dunning_level": "1", "ids": [level1[0].pk]})
    assert response.status_code == 403
    assert mailoutbox == []


def test_invalid_selection_is_400(bo_client, level1):
    assert bo_client.get(NOTIFY, {"dunning_level": "1", "ids": "abc"}).status_code == 400


def test_empty_selection_goes_back_with_a_message(bo_client, level1):
    response = bo_client.get(NOTIFY, {"dunning_level": "1"}, follow=True)
    assert response.redirect_chain[-1][0] == URL + "?dunning_level=1"
    assert "Wählen Sie mindestens einen Auftrag" in response.content.decode()


# --- confirmation ------------------------------------------------------------------------------------


def test_confirmation_shows_counts_template_and_preview_and_sends_nothing(bo_client, level1, place, mailoutbox):
    no_mail = place(10, number="NOMAIL", customer_email="")
    paid = place(10, number="PAID", paid_at=timezone.now())
    ids = [o.pk for o in level1] + [no_mail.pk, paid.pk]
    response = bo_client.get(NOTIFY, {"dunning_level": "1", "ids": ids})
    assert response.status_code == 200
    plan = response.context["plan"]
    assert (plan.selected, plan.will_send, plan.no_email, plan.not_at_level, plan.no_template) == (5, 3, 1, 1, 0)
    html = response.content.decode()
    assert 'id="will-send">3<' in html
    assert "keine E-Mail-Adresse" in html
    assert "Reminder 1" in html  # the template's name
    # the rendered preview of the first order that would get a reminder
    assert "Zahlungserinnerung zu Bestellung A0" in html
    assert "Hallo " + level1[0].customer_name in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert mailoutbox == []
    assert not Reminder.objects.exists()
    assert not DunningRun.objects.exists()


def test_confirmation_counts_orders_without_template(bo_client, level1, invoice, config):
    from tests.factories import DunningConfigFactory

    other = SalesAccountFactory(name="eBay")
    DunningConfigFactory(sales_account=other, payment_method=invoice)
    orphan = OrderFactory(sales_account=other, payment_method=invoice, number="E1", ordered_at=level1[0].ordered_at)
    response = bo_client.get(NOTIFY, {"dunning_level": "1", "ids": [level1[0].pk, orphan.pk]})
    plan = response.context["plan"]
    assert (plan.will_send, plan.no_template) == (1, 1)
    assert "keine Vorlage" in response.content.decode()


def test_confirmation_for_all_matching(bo_client, level1, place):
    place(16, sent=1, number="L2")  # level 2: not part of the level 1 filter
    response = bo_client.get(NOTIFY, {"dunning_level": "1", "select_across": "1"})
    assert response.context["plan"].selected == 3
    assert response.context["plan"].will_send == 3


# --- sending ----------------------------------------------------------------------------------------


def test_post_sends_and_orders_move_up(bo_client, level1, backoffice_user, mailoutbox):
    chosen = level1[:2]
    response = bo_client.post(NOTIFY, {"dunning_level": "1", "ids": [o.pk for o in chosen]})
    assert response.status_code == 302
    run = DunningRun.objects.get()
    assert response.url.startswith(f"/orders/open-payments/runs/{run.pk}/")
    assert len(mailoutbox) == 2
    assert {m.to[0] for m in mailoutbox} == {o.customer_email for o in chosen}
    for order in chosen:
        order.refresh_from_db()
        assert order.reminders_sent == 1
        reminder = Reminder.objects.get(order=order)
        assert (reminder.status, reminder.trigger, reminder.sent_by) == ("sent", "manual", backoffice_user)
    level1[2].refresh_from_db()
    assert level1[2].reminders_sent == 0
    assert (run.sent, run.skipped, run.failed, run.started_by) == (2, 0, 0, backoffice_user)
    # they left level 1
    html = bo_client.get(URL, {"dunning_level": "1"}).content.decode()
    assert chosen[0].number not in html and level1[2].number in html
    # the result page
    result = bo_client.get(response.url)
    assert result.status_code == 200
    assert 'id="count-sent">2<' in result.content.decode()


def test_post_all_matching(bo_client, level1, mailoutbox):
    response = bo_client.post(NOTIFY, {"dunning_level": "1", "select_across": "1"})
    assert response.status_code == 302
    assert len(mailoutbox) == 3


def test_orders_paid_meanwhile_are_skipped_with_reason(bo_client, level1, mailoutbox):
    ids = [o.pk for o in level1]
    assert bo_client.get(NOTIFY, {"dunning_level": "1", "ids": ids}).context["plan"].will_send == 3
    level1[0].paid_at = timezone.now()
    level1[0].save()
    response = bo_client.post(NOTIFY, {"dunning_level": "1", "ids": ids}, follow=True)
    assert len(mailoutbox) == 2
    run = DunningRun.objects.get()
    assert (run.sent, run.skipped) == (2, 1)
    assert run.details["skipped"] == {"not_at_level": 1}
    html = response.content.decode()
    assert "nicht mehr auf dieser Stufe" in html
    assert level1[0].number in html  # listed among the skipped orders


def test_second_notify_of_the_same_level_skips(bo_client, level1, mailoutbox):
    ids = [level1[0].pk]
    bo_client.post(NOTIFY, {"dunning_level": "1", "ids": ids})
    bo_client.post(NOTIFY, {"dunning_level": "1", "ids": ids})
    assert len(mailoutbox) == 1
    assert DunningRun.objects.order_by("id").last().skipped == 1


def test_notify_level_2(bo_client, place, assignments, mailoutbox):
    order = place(16, sent=1, number="L2")
    bo_client.post(NOTIFY, {"dunning_level": "2", "ids": [order.pk]})
    order.refresh_from_db()
    assert order.reminders_sent == 2
    assert len(mailoutbox) == 1


# --- large selections: a Celery task -------------------------------------------------------------------


def test_large_selection_runs_as_a_task(bo_client, level1, settings, mailoutbox, django_capture_on_commit_callbacks):
    settings.DUNNING_ASYNC_NOTIFY_THRESHOLD = 2
    confirm = bo_client.get(NOTIFY, {"dunning_level": "1", "select_across": "1"})
    assert confirm.context["runs_async"]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = bo_client.post(NOTIFY, {"dunning_level": "1", "select_across": "1"})
    run = DunningRun.objects.get()
    assert response.url.startswith(f"/orders/open-payments/runs/{run.pk}/")
    assert len(callbacks) == 1
    assert mailoutbox == []  # queued after commit, not sent yet
    progress = bo_client.get(response.url)
    html = progress.content.decode()
    assert '<meta http-equiv="refresh"' in html and "0 von 3" in html
    callbacks[0]()  # the commit: eager Celery runs the task inline
    assert len(mailoutbox) == 3
    run.refresh_from_db()
    assert run.is_finished and run.sent == 3 and run.details["queued"]
    html = bo_client.get(response.url).content.decode()
    assert '<meta http-equiv="refresh"' not in html
    assert 'id="count-sent">3<' in html


def test_task_is_queued_with_ids(bo_client, level1, settings, django_capture_on_commit_callbacks):
    settings.DUNNING_ASYNC_NOTIFY_THRESHOLD = 1
    settings.DUNNING_BATCH_SIZE = 2  # three orders: two chunks, a task each
    with mock.patch("dunning.tasks.send_chunk.delay") as delay, django_capture_on_commit_callbacks(execute=True):
        bo_client.post(NOTIFY, {"dunning_level": "1", "select_across": "1"})
    run = DunningRun.objects.get()
    chunks = list(DunningRunChunk.objects.filter(run=run).order_by("id"))
    assert [c.kwargs for c in delay.call_args_list] == [{"chunk_id": c.pk} for c in chunks]
    assert sorted(i for c in chunks for i in c.order_ids) == sorted(o.pk for o in level1)
    assert {c.level for c in chunks} == {1} and run.finished_at is None


def test_broker_down_shows_an_error_and_sends_nothing(
    bo_client, level1, settings, mailoutbox, django_capture_on_commit_callbacks
):
    settings.DUNNING_ASYNC_NOTIFY_THRESHOLD = 1
    with (
        mock.patch("dunning.tasks.send_chunk.delay", side_effect=OperationalError("Connection refused")),
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = bo_client.post(NOTIFY, {"dunning_level": "1", "select_across": "1"})
    assert mailoutbox == []
    assert not Reminder.objects.exists()
    run = DunningRun.objects.get()
    assert run.is_finished and "nicht erreichbar" in run.error and run.sent == 0
    html = bo_client.get(response.url).content.decode()
    assert "Warteschlange ist nicht erreichbar" in html
    assert '<meta http-equiv="refresh"' not in html


def test_task_redelivered_after_finish_does_nothing(level1, backoffice_user, mailoutbox, now):
    from dunning.tasks import notify_orders

    run = DunningRun.objects.create(trigger="manual", started_at=now, finished_at=now)
    notify_orders(run_id=run.pk, order_ids=[o.pk for o in level1], level=1, user_id=backoffice_user.pk)
    assert mailoutbox == []


def test_assignment_of_another_language_is_used(bo_client, level1, account, mailoutbox):
    from tests.factories import EmailTemplateFactory

    EmailTemplateFactory(
        name="Reminder 1", language="en", subject="Payment reminder {{ order.number }}", body="Dear {{ customer_name }}"
    )
    english = level1[0]
    english.language = "en"
    english.save()
    html = bo_client.get(NOTIFY, {"dunning_level": "1", "ids": [english.pk]}).content.decode()
    assert "Payment reminder " + english.number in html
    assert ReminderAssignmentFactory._meta.model.objects.filter(level=1).count() == 1


def test_bounced_address_is_counted_and_skipped(bo_client, place, assignments, mailoutbox):
    level2 = [place(16, sent=1, number=f"Z{i}") for i in range(3)]
    bounced = level2[0]  # its first reminder bounced later
    Reminder.objects.filter(order=bounced).update(status=Reminder.Status.BOUNCED)
    ids = [o.pk for o in level2]
    html = bo_client.get(URL, {"dunning_level": "2"}).content.decode()
    assert html.count("Adresse unzustellbar") == 1
    plan = bo_client.get(NOTIFY, {"dunning_level": "2", "ids": ids}).context["plan"]
    assert (plan.will_send, plan.bounced, plan.skipped) == (2, 1, 1)
    bo_client.post(NOTIFY, {"dunning_level": "2", "ids": ids})
    assert len(mailoutbox) == 2
    assert DunningRun.objects.get().details["skipped"] == {"bounced": 1}


def test_confirmation_preview_states_the_claim(bo_client, level1):
    response = bo_client.get(NOTIFY, {"dunning_level": "1", "ids": [o.pk for o in level1]})
    plan = response.context["plan"]
    assert plan.preview_claim is not None and plan.preview_deadline is not None
    html = response.content.decode()
    assert "Forderung in dieser Mahnung" in html and "Insgesamt fällig" in html and "Zahlungsfrist" in html
    # a consumer's first reminder: level 1 is free and default has not begun
    assert plan.preview_claim.total_due == plan.preview_order.total


# --- the confirmation names the orders (issue 18, item 1) -----------------------------------------------


def test_confirmation_names_the_orders_sent_and_skipped_with_template_and_reason(bo_client, level1, place):
    no_mail = place(10, number="NOMAIL", customer_email="", customer_name="Erika Ohnemail")
    ids = [o.pk for o in level1] + [no_mail.pk]
    response = bo_client.get(NOTIFY, {"dunning_level": "1", "ids": ids})
    plan = response.context["plan"]
    assert [o.number for o in plan.send_sample] == ["A0", "A1", "A2"]
    assert all(o.template is not None for o in plan.send_sample)
    assert [(o.number, o.skip_reason) for o in plan.skip_sample] == [("NOMAIL", "no_email")]
    html = response.content.decode()
    assert "Diese 3 Aufträge erhalten die Mahnung" in html
    assert "Dieser Auftrag wird übersprungen" in html
    assert "Erika Ohnemail" in html and "keine E-Mail-Adresse" in html
    assert level1[0].customer_name in html
    assert plan.send_sample[0].template.name in html


def test_confirmation_names_the_first_50_and_links_the_rest(bo_client, place, assignments):
    for i in range(55):
        place(10, number=f"N{i:03d}")
    for i in range(52):
        place(10, number=f"S{i:03d}", customer_email="")
    response = bo_client.get(NOTIFY, {"dunning_level": "1", "select_across": "1"})
    plan = response.context["plan"]
    assert len(plan.send_sample) == 50 and plan.send_sample[0].number == "N000"
    assert len(plan.skip_sample) == 50 and plan.skip_sample[-1].number == "S049"
    html = response.content.decode()
    assert "Die ersten 50 von 55 nach Auftragsnummer." in html
    assert "Alle in der gefilterten Übersicht" in html
    assert 'href="/orders/open-payments/?dunning_level=1"' in html
