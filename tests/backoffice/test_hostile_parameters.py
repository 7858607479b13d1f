"""Every page against hostile parameters: never a server error. A fixed grid, kept from the fuzz
runs that found a 500 on SQLite for a huge id in an admin filter, for a `next` that is a bare word,
for a NUL in an API path, for a block reason with a NUL and for `updated_since=0001-01-01`: each
page gets every hostile value in every parameter name it might read at once, the admin change
lists each id filter with a huge number, and the forms every value as a POST. A page may refuse
(400, 404, a form error, a redirect); it may not fail."""

import pytest
from django.test import Client

from dunning.models import DunningRun, Reminder

HOSTILE = [
    "", "-1", "0", "99999999999999999999", "1e400", "NaN", "inf", "abc", "2026-02-30", "31.12.9999", "0001-01-01",
    "9999-12-31", "9999-12-31T23:59:59-12:00", "2026-13-01", "1,5", "12.345,67", "ä", "<script>", "'\"", "%", "..",
    " 1", "３", "//evil.example", "9999-12-31", "x" * 3000,
]
NAMES = [
    "dunning_level", "q", "page", "o", "state", "sales_account", "payment_method", "blocked", "flagged", "ids",
    "select_across", "period", "from", "to", "days", "age", "template", "level", "status", "format", "download",
    "action", "reason", "paid_on", "run", "next", "letters", "release_reservation", "email", "outcome", "e", "p",
]
ADMIN_LISTS = {
    "/admin/orders/order/": ["sales_account", "payment_method", "sales_account__id__exact",
                             "payment_method__id__exact"],
    "/admin/dunning/reminder/": ["order", "run", "order__id__exact", "run__id__exact", "level"],
    "/admin/dunning/dunningrun/": ["started_by", "started_by__id__exact"],
    "/admin/dunning/dunningconfig/": ["sales_account", "payment_method", "sales_account__id__exact"],
    "/admin/accounts/apikey/": ["sales_account", "sales_account__id__exact"],
    "/admin/webhooks/webhookdelivery/": ["endpoint", "event", "endpoint__id__exact"],
}


@pytest.fixture
def world(bo_client, place, assignments):
    orders = [place(10, number=f"H{i}") for i in range(3)]
    bo_client.post("/orders/open-payments/notify/", {"dunning_level": "1", "select_across": "1"})
    return {"order": orders[0], "run": DunningRun.objects.get(), "reminder": Reminder.objects.first()}


def _pages(world) -> list[str]:
    return [
        "/", "/orders/open-payments/", "/orders/dashboard/", "/orders/open-payments/help/",
        "/orders/open-payments/export/", "/orders/open-payments/notify/",
        f"/orders/open-payments/runs/{world['run'].pk}/",
        f"/orders/{world['order'].pk}/", "/payments/upload/", "/payments/unmatched/", "/payments/unmatched/count/",
        "/orders/letters/1/", "/orders/open-payments/export/1/", "/orders/open-payments/export/1/file",
    ]


def _forms(world) -> list[str]:
    order, reminder = world["order"], world["reminder"]
    return ["/orders/actions/", "/orders/open-payments/notify/", f"/orders/{order.pk}/undo-paid/",
            f"/orders/{order.pk}/email/", f"/orders/reminders/{reminder.pk}/resolve/", "/orders/letters/"]


def test_pages_survive_hostile_query_parameters(bo_client, world):
    for url in _pages(world):
        for value in HOSTILE:
            response = bo_client.get(url, dict.fromkeys(NAMES, value))
            assert response.status_code < 500, (url, value)


def test_admin_lists_survive_huge_ids_and_hostile_filters(client, support_user, world):
    client.force_login(support_user)
    for url, names in ADMIN_LISTS.items():
        for name in names:
            for value in ("99999999999999999999", "-99999999999999999999", "abc", "0001-01-01"):
                assert client.get(url, {name: value}).status_code < 500, (url, name, value)
        for value in ("", "abc", "x" * 3000, "ä"):
            assert client.get(url, {"q": value, "o": value, "p": value}).status_code < 500, (url, value)


def test_forms_survive_hostile_posts(bo_client, world):
    for url in _forms(world):
        for value in HOSTILE:
            data = dict.fromkeys(NAMES, value)
            data["ids"] = [value, str(world["order"].pk)]
            assert bo_client.post(url, data).status_code < 500, (url, value)


def test_every_bulk_action_survives_a_hostile_next_and_selection(bo_client, world):
    """Each real action, so the view gets past choosing one: with nothing selected it redirects to
    `next` at once, with a selection after the action."""
    for action in ("mark_paid", "block", "unblock", "cancel", "clear_flag", "nothing"):
        for value in HOSTILE:
            for data in ({"action": action, "next": value},
                         {"action": action, "next": value, "ids": [str(world["order"].pk)], "reason": "r",
                          "paid_on": value, "release_reservation": value}):
                assert bo_client.post("/orders/actions/", data).status_code < 500, (action, data)


def test_the_api_survives_hostile_filters_and_paths(world, account):
    from accounts.services import api_key_create

    _, key = api_key_create(sales_account=account, name="hostile")
    api = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    for value in HOSTILE:
        filters = ("dunning_level", "open", "updated_since", "cursor", "page_size")
        response = api.get("/api/v1/orders", dict.fromkeys(filters, value))
        assert response.status_code < 500, value
        response = api.get("/api/v1/orders", {"updated_since": value})
        assert response.status_code < 500, value
    for path in ("/api/v1/orders/%00", "/api/v1/orders/" + "9" * 300, "/api/v1/orders/%C3%A4", "/api/v1/nothing"):
        assert api.get(path).status_code < 500, path
    for reason in ("a\x00b", "x" * 3000, "two\nlines", ""):
        response = api.post(f"/api/v1/orders/{world['order'].number}/dunning-block", {"reason": reason},
                            content_type="application/json")
        assert response.status_code < 500, reason
