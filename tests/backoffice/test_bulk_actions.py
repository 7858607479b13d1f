"""Bulk actions: a confirmation page on GET, the change only on POST (with CSRF), counts as
messages, an audit row per changed order; and the services behind them."""

import datetime

import pytest
from django.test import Client
from django.utils import timezone

from orders import services
from orders.models import OrderEvent
from tests.factories import OrderFactory

ACTIONS = "/orders/actions/"


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_get_shows_a_confirmation_and_changes_nothing(bo_client, place):
    order = place(10)
    response = bo_client.get(ACTIONS, {"action": "mark_paid", "ids": [order.pk]})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'method="post"' in html and 'name="csrfmiddlewaretoken"' in html and 'name="paid_on"' in html
    order.refresh_from_db()
    assert order.paid_at is None
    assert not OrderEvent.objects.exists()


def test_post_needs_csrf(backoffice_user, place):
    order = place(10)
    client = Client(enforce_csrf_checks=True)
    client.force_login(backoffice_user)
    response = client.post(ACTIONS, {"action": "unblock", "ids": [order.pk]})
    assert response.status_code == 403


def test_unknown_action_is_400(bo_client, place):
    assert bo_client.get(ACTIONS, {"action": "delete_everything", "ids": [place(10).pk]}).status_code == 400


def test_outsider_gets_403(client, outsider_user, place):
    order = place(10)
    client.force_login(outsider_user)
    assert client.post(ACTIONS, {"action": "mark_paid", "ids": [order.pk], "paid_on": "2026-01-01"}).status_code == 403
    order.refresh_from_db()
    assert order.paid_at is None


def test_mark_paid(bo_client, place, backoffice_user, today):
    orders = [place(10, number=f"P{i}") for i in range(2)]
    already = place(10, number="DONE", paid_at=timezone.now() - datetime.timedelta(days=1))
    paid_on = today - datetime.timedelta(days=2)
    response = bo_client.post(
        ACTIONS,
        {
            "action": "mark_paid",
            "ids": [o.pk for o in orders + [already]],
            "paid_on": paid_on.isoformat(),
            "next": "/orders/open-payments/?q=P",
        },
        follow=True,
    )
    assert response.redirect_chain[0][0] == "/orders/open-payments/?q=P"
    msgs = messages_of(response)
    assert any("2 Aufträge als bezahlt markiert" in m for m in msgs), msgs
    assert any("1 Auftrag übersprungen" in m and "bereits bezahlt oder storniert" in m for m in msgs), msgs
    for order in orders:
        order.refresh_from_db()
        assert order.paid_at is not None
        assert timezone.localtime(order.paid_at).date() == paid_on
        event = OrderEvent.objects.get(order=order)
        assert (event.action, event.user) == ("marked_paid", backoffice_user)


def test_mark_paid_rejects_a_future_date(bo_client, place, today):
    order = place(10)
    response = bo_client.post(
        ACTIONS, {"action": "mark_paid", "ids": [order.pk], "paid_on": (today + datetime.timedelta(days=3)).isoformat()}
    )
    assert response.status_code == 400
    order.refresh_from_db()
    assert order.paid_at is None


def test_block_needs_a_reason(bo_client, place):
    order = place(10)
    response = bo_client.post(ACTIONS, {"action": "block", "ids": [order.pk], "reason": "  "})
    assert response.status_code == 400
    order.refresh_from_db()
    assert not order.dunning_blocked


@pytest.mark.parametrize("reason", ["Raten\x00zahlung", "zwei\nZeilen"])
def test_block_refuses_a_reason_with_a_control_character(bo_client, place, reason):
    order = place(10)
    response = bo_client.post(ACTIONS, {"action": "block", "ids": [order.pk], "reason": reason})
    assert response.status_code == 400
    order.refresh_from_db()
    assert not order.dunning_blocked
    with pytest.raises(ValueError, match="control character"):
        services.orders_block_dunning(order_ids=[order.pk], reason=reason, user=None, now=timezone.now())


def test_block_and_unblock(bo_client, place):
    order = place(10)
    response = bo_client.post(ACTIONS, {"action": "block", "ids": [order.pk], "reason": "Ratenzahlung"}, follow=True)
    assert any("gesperrt" in m for m in messages_of(response))
    order.refresh_from_db()
    assert order.dunning_blocked and order.dunning_block_reason == "Ratenzahlung"
    assert OrderEvent.objects.get(order=order).details == {"reason": "Ratenzahlung"}
    # blocked again: skipped
    response = bo_client.post(ACTIONS, {"action": "block", "ids": [order.pk], "reason": "x"}, follow=True)
    assert any("Mahnung bereits gesperrt" in m for m in messages_of(response))
    bo_client.post(ACTIONS, {"action": "unblock", "ids": [order.pk]})
    order.refresh_from_db()
    assert not order.dunning_blocked and order.dunning_block_reason == ""
    assert list(OrderEvent.objects.filter(order=order).values_list("action", flat=True).order_by("id")) == [
        "dunning_blocked",
        "dunning_unblocked",
    ]


def test_cancel_only_flagged_prepayment(bo_client, place, prepayment, account):
    flagged = OrderFactory(
        sales_account=account, payment_method=prepayment, number="V1", flagged_for_cancellation_at=timezone.now()
    )
    unflagged = OrderFactory(sales_account=account, payment_method=prepayment, number="V2")
    invoice_order = place(10, number="I1", flagged_for_cancellation_at=timezone.now())
    response = bo_client.post(
        ACTIONS,
        {"action": "cancel", "release_reservation": "on", "ids": [flagged.pk, unflagged.pk, invoice_order.pk]},
        follow=True,
    )
    msgs = " ".join(messages_of(response))
    assert "1 Auftrag storniert" in msgs
    assert "kein Vorkasse-Auftrag (1)" in msgs and "nicht zur Stornierung markiert (1)" in msgs
    flagged.refresh_from_db()
    assert flagged.cancelled_at is not None and flagged.reservation_released_at is not None
    unflagged.refresh_from_db()
    invoice_order.refresh_from_db()
    assert unflagged.cancelled_at is None and invoice_order.cancelled_at is None


def test_cancel_without_releasing(bo_client, prepayment, account):
    flagged = OrderFactory(sales_account=account, payment_method=prepayment, flagged_for_cancellation_at=timezone.now())
    bo_client.post(ACTIONS, {"action": "cancel", "ids": [flagged.pk]})
    flagged.refresh_from_db()
    assert flagged.cancelled_at is not None and flagged.reservation_released_at is None


def test_clear_flag(bo_client, place):
    order = place(10, flagged_for_cancellation_at=timezone.now())
    plain = place(10, number="PLAIN")
    response = bo_client.post(ACTIONS, {"action": "clear_flag", "ids": [order.pk, plain.pk]}, follow=True)
    msgs = " ".join(messages_of(response))
    assert "1 Auftrag" in msgs and "nicht zur Stornierung markiert (1)" in msgs
    order.refresh_from_db()
    assert order.flagged_for_cancellation_at is None
    assert OrderEvent.objects.get(order=order).action == "cancellation_flag_cleared"


def test_action_on_all_matching_the_filter(bo_client, place):
    blocked = [place(10, number=f"B{i}", dunning_blocked=True, dunning_block_reason="x") for i in range(3)]
    free = place(10, number="FREE")
    confirm = bo_client.get(ACTIONS, {"action": "unblock", "select_across": "1", "blocked": "true"})
    assert confirm.context["count"] == 3
    bo_client.post(ACTIONS, {"action": "unblock", "select_across": "1", "blocked": "true"})
    for order in blocked:
        order.refresh_from_db()
        assert not order.dunning_blocked
    assert not OrderEvent.objects.filter(order=free).exists()


@pytest.mark.parametrize("next_", ["https://evil.example/", "//evil.example/x", "9999-12-31", "open_payments",
                                   "backoffice:dashboard"])
def test_a_next_that_is_not_a_local_path_is_ignored(bo_client, place, next_):
    """Neither another site nor a bare word, which Django's `redirect` would take for a view name
    (a 500 when it is none, found by a fuzz of the forms)."""
    order = place(10)
    response = bo_client.post(ACTIONS, {"action": "block", "reason": "r", "ids": [order.pk], "next": next_})
    assert response.status_code == 302 and response.url == "/orders/open-payments/"


# --- the services directly ----------------------------------------------------------------------------


def test_services_report_missing_orders(place, backoffice_user):
    order = place(10)
    result = services.orders_unblock_dunning(order_ids=[order.pk, 999999], user=backoffice_user, now=timezone.now())
    assert result.done == []
    assert result.skipped == {order.pk: services.BulkSkip.NOT_BLOCKED, 999999: services.BulkSkip.NOT_FOUND}


def test_block_service_refuses_an_empty_reason(place, backoffice_user):
    with pytest.raises(ValueError):
        services.orders_block_dunning(order_ids=[place(10).pk], reason=" ", user=backoffice_user, now=timezone.now())


def test_services_work_in_chunks(place, backoffice_user, monkeypatch):
    monkeypatch.setattr(services, "CHUNK_SIZE", 2)
    orders = [place(10, number=f"C{i}") for i in range(5)]
    result = services.orders_block_dunning(
        order_ids=(o.pk for o in orders), reason="r", user=backoffice_user, now=timezone.now()
    )
    assert sorted(result.done) == sorted(o.pk for o in orders)
    assert OrderEvent.objects.filter(action="dunning_blocked").count() == 5
