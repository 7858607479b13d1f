"""Who may do what, for every page and action: anonymous, staff outside the "Back office" group,
back office, superuser (support). Every state change is POST-only and needs the CSRF token."""

import pytest
from django.test import Client

from dunning.models import DunningRun, Reminder
from orders.models import Order
from tests.factories import OrderFactory, berlin

ROLES = ("anonymous", "outsider", "backoffice", "support")
LOGIN = "/accounts/login/"


@pytest.fixture
def world(config, assignments, prepayment, support_user, backoffice_user, outsider_user):
    order = OrderFactory(ordered_at=berlin(2026, 9, 1))
    run = DunningRun.objects.create(trigger="manual", started_at=berlin(2026, 11, 1))
    reminder = Reminder.objects.create(order=order, level=1, trigger="manual", recipient=order.customer_email,
                                       subject="s", body="b", status="pending", created_at=berlin(2026, 11, 1))
    return {"order": order, "run": run, "reminder": reminder,
            "users": {"outsider": outsider_user, "backoffice": backoffice_user, "support": support_user}}


def client_for(role, world, **kwargs) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en", **kwargs)
    if role != "anonymous":
        client.force_login(world["users"][role])
    return client


def back_office_pages(world):
    o, r = world["order"], world["run"]
    return [
        "/orders/open-payments/",
        "/orders/open-payments/?dunning_level=1",
        f"/orders/open-payments/notify/?dunning_level=1&ids={o.id}",
        f"/orders/actions/?action=block&ids={o.id}",
        f"/orders/open-payments/runs/{r.id}/",
        f"/orders/{o.id}/",
        "/orders/dashboard/",
    ]


# (url, expected status for outsider, backoffice, support); anonymous always goes to the login page
ADMIN_PAGES = [
    ("/admin/", 200, 200, 200),
    ("/admin/orders/order/", 403, 200, 200),
    ("/admin/dunning/dunningconfig/", 403, 200, 200),
    ("/admin/dunning/emailtemplate/", 403, 200, 200),
    ("/admin/dunning/reminderassignment/", 403, 200, 200),
    ("/admin/dunning/reminder/", 403, 200, 200),
    ("/admin/dunning/dunningrun/", 403, 200, 200),
    ("/admin/accounts/salesaccount/", 403, 200, 200),
    ("/admin/dunning/dunningautomation/1/change/", 403, 403, 200),
    ("/admin/dunning/automationchange/", 403, 403, 200),
    ("/admin/auth/user/", 403, 403, 200),
]


@pytest.mark.parametrize("role", ROLES)
def test_back_office_pages(world, role):
    client = client_for(role, world)
    for url in back_office_pages(world):
        response = client.get(url)
        if role == "anonymous":
            assert response.status_code == 302 and response.url.startswith(LOGIN), url
        elif role == "outsider":
            assert response.status_code == 403, url
        else:
            assert response.status_code == 200, (url, response.status_code)


@pytest.mark.parametrize("role", ROLES)
def test_admin_pages(world, role):
    client = client_for(role, world)
    for url, *expected in ADMIN_PAGES:
        response = client.get(url)
        if role == "anonymous":
            assert response.status_code == 302 and "/admin/login/" in response.url, url
        else:
            want = dict(zip(ROLES[1:], expected, strict=True))[role]
            assert response.status_code == want, (url, response.status_code)


def test_automation_is_not_in_the_admin_index_for_back_office(world):
    page = client_for("backoffice", world).get("/admin/").content.decode()
    assert "/admin/dunning/dunningconfig/" in page
    assert "/admin/dunning/dunningautomation/" not in page


def state_changes(world):
    o, rem = world["order"], world["reminder"]
    ids = {"ids": str(o.id)}
    return [
        ("/orders/open-payments/notify/", {"dunning_level": "1", **ids}),
        ("/orders/actions/", {"action": "mark_paid", "paid_on": "2026-11-20", **ids}),
        ("/orders/actions/", {"action": "block", "reason": "dispute", **ids}),
        ("/orders/actions/", {"action": "unblock", **ids}),
        ("/orders/actions/", {"action": "clear_flag", **ids}),
        ("/orders/actions/", {"action": "cancel", **ids}),
        (f"/orders/reminders/{rem.id}/resolve/", {"outcome": "failed"}),
    ]


def snapshot():
    return (list(Order.objects.values_list("id", "paid_at", "cancelled_at", "dunning_blocked",
                                           "flagged_for_cancellation_at", "reminders_sent")),
            list(Reminder.objects.values_list("id", "status")))


@pytest.mark.parametrize("role", ["anonymous", "outsider"])
def test_state_changes_are_refused_for_those_without_rights(world, role, mailoutbox):
    client = client_for(role, world)
    before = snapshot()
    for url, data in state_changes(world):
        response = client.post(url, data)
        assert response.status_code in (302, 403), url
        if role == "anonymous":
            assert response.url.startswith(LOGIN)
    assert snapshot() == before and mailoutbox == []


@pytest.mark.parametrize("role", ["backoffice", "support"])
def test_state_changes_need_the_csrf_token(world, role, mailoutbox):
    client = client_for(role, world, enforce_csrf_checks=True)
    before = snapshot()
    for url, data in state_changes(world):
        assert client.post(url, data).status_code == 403, url
    assert snapshot() == before and mailoutbox == []


@pytest.mark.parametrize("role", ["backoffice", "support"])
def test_get_never_changes_state(world, role, mailoutbox):
    client = client_for(role, world)
    before = snapshot()
    for url, data in state_changes(world):
        response = client.get(url, data)
        assert response.status_code in (200, 400, 405), (url, response.status_code)
    assert snapshot() == before and mailoutbox == []


def test_back_office_may_change_state_with_a_token(world, mailoutbox):
    """The positive side of the matrix: the same POSTs work for the back office."""
    client = client_for("backoffice", world)
    order = world["order"]
    response = client.post("/orders/actions/", {"action": "block", "reason": "dispute", "ids": str(order.id)})
    assert response.status_code == 302
    assert Order.objects.get(pk=order.pk).dunning_blocked
    response = client.post(f"/orders/reminders/{world['reminder'].id}/resolve/", {"outcome": "failed"})
    assert response.status_code == 302
    assert Reminder.objects.get(pk=world["reminder"].pk).status == "failed"


def test_logout_is_post_only(world):
    client = client_for("backoffice", world)
    assert client.get("/accounts/logout/").status_code == 405
    assert client.post("/accounts/logout/").status_code in (200, 302)
    assert client.get("/orders/open-payments/").status_code == 302
