"""The order page: data, reminder history, audit trail, actions, and resolving reminders whose
outcome is unknown."""

import datetime

from django.utils import timezone

from dunning import services
from dunning.models import Reminder
from orders.models import OrderEvent
from tests.factories import ReminderFactory, UserFactory


def url(order) -> str:
    return f"/orders/{order.pk}/"


def test_order_page_shows_data_history_and_events(bo_client, place, backoffice_user):
    order = place(16, sent=1, number="D-1", customer_name="Erika Mustermann")
    reminder = Reminder.objects.get(order=order)
    reminder.subject, reminder.body = "Zahlungserinnerung D-1", "Bitte zahlen Sie."
    reminder.sent_by = backoffice_user
    reminder.trigger = "manual"
    reminder.save()
    ReminderFactory(order=order, level=2, status=Reminder.Status.FAILED, error="SMTP 550 mailbox unavailable")
    OrderEvent.objects.create(
        order=order,
        action="dunning_blocked",
        user=backoffice_user,
        at=timezone.now(),
        details={"reason": "Ratenzahlung"},
    )
    response = bo_client.get(url(order))
    assert response.status_code == 200
    html = response.content.decode()
    for text in (
        "D-1",
        "Erika Mustermann",
        "Mahnstufe 2",
        "Zahlungserinnerung D-1",
        "Bitte zahlen Sie.",
        "<details>",
        "SMTP 550 mailbox unavailable",
        "Manuell",
        "backoffice",
        "Mahnung gesperrt",
        "Ratenzahlung",
    ):
        assert text in html, text
    # actions from the order page: Notify at its level and the bulk actions for this one order
    assert 'name="dunning_level" value="2"' in html
    assert 'value="mark_paid"' in html and 'value="block"' in html


def test_order_page_permissions(client, place, outsider_user):
    order = place(10)
    assert client.get(url(order)).status_code == 302
    client.force_login(outsider_user)
    assert client.get(url(order)).status_code == 403


def test_unknown_order_is_404(bo_client, db):
    assert bo_client.get("/orders/999999/").status_code == 404


def test_paid_order_has_no_actions(bo_client, place):
    order = place(10, paid_at=timezone.now())
    html = bo_client.get(url(order)).content.decode()
    assert "bezahlt" in html and 'value="mark_paid"' not in html


def _stale(order, level=1):
    return ReminderFactory(
        order=order,
        level=level,
        status=Reminder.Status.PENDING,
        created_at=timezone.now() - datetime.timedelta(hours=1),
        error="Outcome unknown, not sent again automatically: timeout",
    )


def test_stale_in_flight_reminder_is_shown_prominently(bo_client, place):
    order = place(10)
    _stale(order)
    fresh_order = place(10, number="FRESH")
    ReminderFactory(order=fresh_order, level=1, status=Reminder.Status.PENDING, created_at=timezone.now())
    html = bo_client.get(url(order)).content.decode()
    assert 'id="unknown-reminders"' in html and "Als versendet markieren" in html
    assert 'id="unknown-reminders"' not in bo_client.get(url(fresh_order)).content.decode()


def test_mark_unknown_reminder_as_sent(bo_client, place, backoffice_user):
    order = place(10)
    reminder = _stale(order)
    response = bo_client.post(f"/orders/reminders/{reminder.pk}/resolve/", {"outcome": "sent"})
    assert response.url == url(order)
    reminder.refresh_from_db()
    order.refresh_from_db()
    assert reminder.status == "sent" and reminder.sent_at == reminder.created_at
    assert order.reminders_sent == 1 and order.last_reminder_at == reminder.created_at
    event = OrderEvent.objects.get(order=order)
    assert (event.action, event.user) == ("reminder_marked_sent", backoffice_user)


def test_mark_unknown_reminder_as_failed_frees_the_level(bo_client, place, assignments, mailoutbox):
    order = place(10)
    reminder = _stale(order)
    bo_client.post(f"/orders/reminders/{reminder.pk}/resolve/", {"outcome": "failed"})
    reminder.refresh_from_db()
    order.refresh_from_db()
    assert reminder.status == "failed" and order.reminders_sent == 0
    assert OrderEvent.objects.get(order=order).action == "reminder_marked_failed"
    # it can be sent again
    bo_client.post("/orders/open-payments/notify/", {"dunning_level": "1", "ids": [order.pk]})
    order.refresh_from_db()
    assert order.reminders_sent == 1 and len(mailoutbox) == 1


def test_resolving_twice_changes_nothing(bo_client, place):
    order = place(10)
    reminder = _stale(order)
    bo_client.post(f"/orders/reminders/{reminder.pk}/resolve/", {"outcome": "sent"})
    response = bo_client.post(f"/orders/reminders/{reminder.pk}/resolve/", {"outcome": "failed"}, follow=True)
    reminder.refresh_from_db()
    assert reminder.status == "sent"
    assert "nicht mehr in Zustellung" in response.content.decode()


def test_resolve_is_post_only_and_validated(bo_client, place):
    reminder = _stale(place(10))
    assert bo_client.get(f"/orders/reminders/{reminder.pk}/resolve/").status_code == 405
    assert bo_client.post(f"/orders/reminders/{reminder.pk}/resolve/", {"outcome": "x"}).status_code == 400


def test_mark_sent_service_keeps_a_higher_count(place):
    order = place(16, sent=1)
    reminder = _stale(order, level=2)
    services.reminder_mark_sent(reminder_id=reminder.pk, user=UserFactory(), now=timezone.now())
    order.refresh_from_db()
    assert order.reminders_sent == 2


def test_a_reminder_still_in_flight_cannot_be_settled_by_a_direct_post(bo_client, place):
    """The 15-minute rule is the server's: the page hides the buttons for a young pending reminder,
    and a POST made anyway (an old tab, a script) changes nothing and says why."""
    order = place(10)
    reminder = ReminderFactory(order=order, level=1, status=Reminder.Status.PENDING,
                               created_at=timezone.now() - datetime.timedelta(minutes=3))
    for outcome in ("sent", "failed"):
        response = bo_client.post(f"/orders/reminders/{reminder.pk}/resolve/", {"outcome": outcome}, follow=True)
        assert response.status_code == 200
        assert "noch unterwegs" in response.content.decode()
    reminder.refresh_from_db()
    order.refresh_from_db()
    assert reminder.status == Reminder.Status.PENDING and order.reminders_sent == 0
    assert not OrderEvent.objects.filter(order=order).exists()


def test_the_history_shows_every_action_by_its_label(bo_client, place):
    """Bounce, complaint, import and admin events read as sentences, never as raw codes."""
    order = place(10)
    for action in OrderEvent.Action:
        OrderEvent.objects.create(order=order, action=action, at=timezone.now(), details={})
    html = bo_client.get(url(order)).content.decode()
    for action in OrderEvent.Action:
        assert f"<td>{action.value}</td>" not in html, action
    for label in ("Mahnung unzustellbar", "Als Spam gemeldet", "Importiert", "In der Verwaltung geändert"):
        assert label in html, label


def test_order_page_shows_todays_claim_and_each_reminders_frozen_claim(bo_client, place, config):
    config.charge_flat_fee_b2b = True
    config.save()
    order = place(16, sent=1, number="B-1", customer_is_business=True)
    Reminder.objects.filter(order=order).update(
        claim_snapshot={"principal": "49.90", "paid": "0.00", "fees": "0.00", "flat_fee": "40.00",
                        "interest": "0.12", "total_due": "90.02"},
        deadline=datetime.date(2026, 12, 14), subject="Mahnung B-1")
    html = bo_client.get(url(order)).content.decode()
    assert "Forderung heute" in html and "Unternehmer" in html
    assert "Pauschale (§ 288 Abs. 5 BGB)" in html and "40,00\xa0€" in html
    # the reminder's own figures, as they were sent
    assert "In dieser Mahnung genannte Forderung" in html
    assert "90,02\xa0€" in html and "0,12\xa0€" in html and "14.12.2026" in html


def test_order_page_of_a_paid_order_shows_no_claim_today(bo_client, place):
    order = place(16, paid_at=timezone.now())
    html = bo_client.get(url(order)).content.decode()
    assert "Forderung heute" not in html
