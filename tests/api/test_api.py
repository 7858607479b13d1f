"""The API: every endpoint and every error (RFC 9457 problem documents)."""

import datetime
import json
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from accounts.models import ApiKey
from accounts.services import api_key_create
from dunning.models import Reminder
from orders.models import Order, OrderEvent
from tests.factories import DunningConfigFactory, OrderFactory, ReminderFactory, SalesAccountFactory, berlin

PROBLEM = "application/problem+json"


@pytest.fixture(autouse=True)
def _fresh_rate_limit():
    """The rate limit counts in the cache, which outlives a test: every test starts with none."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def key(account):
    return api_key_create(sales_account=account, name="ERP")[1]


@pytest.fixture
def api(key, invoice, prepayment):
    class Api:
        def __init__(self, key):
            self.client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")

        def __getattr__(self, method):
            def call(path, body=None, **kw):
                data = body if isinstance(body, (str, bytes)) or body is None else json.dumps(body)
                return getattr(self.client, method)(f"/api/v1/{path}", data=data, content_type="application/json",
                                                    **kw)
            return call

    return Api(key)


def order_body(**kw):
    body = {"payment_method": "invoice", "customer_name": "Erika Muster", "customer_email": "erika@example.com",
            "total": "49.90", "currency": "EUR", "ordered_at": "2026-11-01T10:00:00+01:00"}
    body.update(kw)
    return body


def assert_problem(response, status, field=None):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith(PROBLEM)
    doc = response.json()
    assert doc["status"] == status and doc["title"] and "detail" in doc
    if field:
        fields = [e.get("field") or e.get("pointer", "").lstrip("/").split("/")[-1] for e in doc["errors"]]
        assert field in fields, doc
    return doc


# --- keys -----------------------------------------------------------------------------------------

def test_key_is_stored_hashed_and_command_prints_it_last(account):
    out = StringIO()
    call_command("create_api_key", "Webshop", "--name", "ERP", stdout=out)
    key = out.getvalue().strip().splitlines()[-1]
    row = ApiKey.objects.get()
    assert key.startswith("mwk_") and key not in (row.key_hash, row.prefix) and row.name == "ERP"
    assert Client(HTTP_AUTHORIZATION=f"Bearer {key}").get("/api/v1/orders").status_code == 200
    row.refresh_from_db()
    assert row.last_used_at is not None


def test_command_unknown_account_is_one_line_error(db):
    with pytest.raises(CommandError, match="no sales account named"):
        call_command("create_api_key", "Nope")


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer mwk_wrong", "Token abc", "Bearer a b",
                                    "Basic Zm9vOmJhcg=="])
def test_missing_or_wrong_key_is_401(db, header):
    client = Client(HTTP_AUTHORIZATION=header) if header else Client()
    response = client.get("/api/v1/orders")
    assert_problem(response, 401)
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_revoked_key_is_401(api, key):
    ApiKey.objects.update(revoked_at=timezone.now())
    assert_problem(api.get("orders"), 401)


def test_admin_creates_key_shown_once_and_revokes(client, support_user, account):
    client.force_login(support_user)
    response = client.post("/admin/accounts/apikey/add/", {"sales_account": account.id, "name": "Shop"}, follow=True)
    row = ApiKey.objects.get()
    text = response.content.decode()
    key = next(w for w in text.replace("<", " ").split() if w.startswith("mwk_"))
    assert row.key_hash not in text
    assert Client(HTTP_AUTHORIZATION=f"Bearer {key}").get("/api/v1/orders").status_code == 200
    assert key not in client.get(f"/admin/accounts/apikey/{row.id}/change/").content.decode()
    client.post("/admin/accounts/apikey/", {"action": "revoke", "_selected_action": [row.id]})
    assert Client(HTTP_AUTHORIZATION=f"Bearer {key}").get("/api/v1/orders").status_code == 401


# --- PUT ------------------------------------------------------------------------------------------

def test_put_creates_201_then_updates_200_and_is_idempotent(api, account):
    response = api.put("orders/A-1", order_body())
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["number"] == "A-1" and body["total"] == "49.90" and body["outstanding"] == "49.90"
    assert body["dunning_level"] is None and body["reminders"] == [] and body["open"] is True
    assert api.put("orders/A-1", order_body()).status_code == 200
    assert api.put("orders/A-1", order_body(total="59.90")).json()["total"] == "59.90"
    order = Order.objects.get()
    assert order.sales_account == account and order.total == Decimal("59.90")
    assert order.events.filter(action=OrderEvent.Action.IMPORT_UPDATED).count() == 1


def test_put_never_touches_dunning_state(api, account, invoice, now):
    order = OrderFactory(sales_account=account, payment_method=invoice, number="B-1", reminders_sent=2,
                         last_reminder_at=now, dunning_blocked=True, dunning_block_reason="customer called")
    response = api.put("orders/B-1", order_body(total="1.00"))
    assert response.status_code == 200
    order.refresh_from_db()
    assert (order.reminders_sent, order.last_reminder_at, order.dunning_blocked) == (2, now, True)
    assert_problem(api.put("orders/B-1", order_body(reminders_sent=0)), 400, "reminders_sent")
    assert_problem(api.put("orders/B-1", order_body(dunning_blocked=False)), 400, "dunning_blocked")


@pytest.mark.parametrize("change,field", [
    ({"total": "-5.00"}, "total"),
    ({"total": 12.5}, "total"),
    ({"total": "12,50"}, "total"),
    ({"currency": "XXY"}, "currency"),
    ({"payment_method": "bitcoin"}, "payment_method"),
    ({"ordered_at": "yesterday"}, "ordered_at"),
    ({"customer_email": "not-an-email"}, "customer_email"),
    ({"customer_name": ""}, "customer_name"),
    ({"language": "fr"}, "language"),
    ({"customer_name": "a\nb"}, "customer_name"),
    ({"customer_name": ["x"]}, "customer_name"),
])
def test_put_invalid_is_400_with_field_errors_and_writes_nothing(api, change, field):
    assert_problem(api.put("orders/C-1", order_body(**change)), 400, field)
    assert not Order.objects.exists()


def test_put_malformed_json_and_non_object(api):
    assert_problem(api.put("orders/C-1", "{not json"), 400)
    assert_problem(api.put("orders/C-1", "[1, 2]"), 400)
    assert_problem(api.put("orders/C-1", order_body(number="OTHER")), 400, "number")
    assert not Order.objects.exists()


def test_body_over_the_limit_is_413(api, settings):
    big = json.dumps({"orders": [order_body(number="x", customer_name="y" * 200)] * 60000})
    assert len(big) > 10 * 1024 * 1024
    assert_problem(api.post("orders/bulk", big), 413)
    assert not Order.objects.exists()


# --- bulk -----------------------------------------------------------------------------------------

def test_bulk_all_or_nothing_with_per_item_errors(api):
    items = [order_body(number=f"D-{i}") for i in range(5)]
    items[3]["total"] = "-1"
    items[4]["currency"] = "???"
    doc = assert_problem(api.post("orders/bulk", {"orders": items}), 400)
    assert {(e["index"], e["field"]) for e in doc["errors"]} == {(3, "total"), (4, "currency")}
    assert not Order.objects.exists()
    items[3]["total"], items[4]["currency"] = "1.00", "EUR"
    response = api.post("orders/bulk", {"orders": items})
    assert response.json() == {"created": 5, "updated": 0, "unchanged": 0}
    items[0]["total"] = "2.00"
    assert api.post("orders/bulk", {"orders": items}).json() == {"created": 0, "updated": 1, "unchanged": 4}


def test_bulk_limits_and_shape(api):
    assert_problem(api.post("orders/bulk", {"orders": [order_body(number=str(i)) for i in range(1001)]}), 400,
                   "orders")
    assert_problem(api.post("orders/bulk", {"orders": "x"}), 400, "orders")
    assert_problem(api.post("orders/bulk", [1]), 400)
    doc = assert_problem(api.post("orders/bulk", {"orders": [order_body(number="E"), order_body(number="E")]}), 400)
    assert doc["errors"][0]["index"] == 1
    doc = assert_problem(api.post("orders/bulk", {"orders": [1]}), 400)
    assert doc["errors"][0]["index"] == 0
    assert not Order.objects.exists()


def test_bulk_1000_is_accepted(api):
    response = api.post("orders/bulk", {"orders": [order_body(number=f"F-{i}") for i in range(1000)]})
    assert response.json()["created"] == 1000


# --- GET ------------------------------------------------------------------------------------------

def test_get_order_with_level_and_reminders(api, account, invoice, now):
    DunningConfigFactory(sales_account=account, payment_method=invoice)
    order = OrderFactory(sales_account=account, payment_method=invoice, number="G-1", ordered_at=berlin(2026, 9, 1),
                         reminders_sent=1, last_reminder_at=berlin(2026, 10, 1))
    ReminderFactory(order=order, level=1, status=Reminder.Status.SENT, sent_at=berlin(2026, 10, 1))
    body = api.get("orders/G-1").json()
    assert body["dunning_level"] == 2 and body["reminders_sent"] == 1
    [reminder] = body["reminders"]
    assert (reminder["level"], reminder["status"]) == (1, "sent")
    assert datetime.datetime.fromisoformat(reminder["sent_at"]) == berlin(2026, 10, 1)
    Order.objects.filter(pk=order.pk).update(reminders_sent=3)
    assert api.get("orders/G-1").json()["dunning_level"] == "completed"


def test_get_order_reads_in_four_queries_and_its_level_is_the_lists(api, account, invoice, prepayment, now,
                                                                  django_assert_num_queries):
    """Reading one order: the key, the order, the account's configs, its reminders (the key's
    last use is written at most once a minute). Its level is computed from the loaded row
    (dunning.selectors.order_level) and must be the one the list computes in SQL, at every level."""
    DunningConfigFactory(sales_account=account, payment_method=invoice)
    DunningConfigFactory(sales_account=account, payment_method=prepayment, level_1_days=3)
    def ago(days: int) -> datetime.datetime:  # the API reads the real clock
        return timezone.now() - datetime.timedelta(days=days)

    cases = [(invoice, ago(2), 0, None), (invoice, ago(40), 0, None), (prepayment, ago(10), 0, None),
             (invoice, ago(60), 1, ago(20)), (invoice, ago(60), 1, ago(1)), (invoice, ago(90), 2, ago(20)),
             (prepayment, ago(90), 3, ago(20))]
    for i, (method, ordered, sent, last) in enumerate(cases):
        order = OrderFactory(sales_account=account, payment_method=method, number=f"Q-{i}", ordered_at=ordered,
                             reminders_sent=sent, last_reminder_at=last)
        for level in range(1, sent + 1):
            ReminderFactory(order=order, level=level, status=Reminder.Status.SENT, sent_at=last)
    OrderFactory(sales_account=account, payment_method=invoice, number="Q-paid", ordered_at=ago(90), paid_at=ago(5))
    listed = {o["number"]: o["dunning_level"] for o in api.get("orders?page_size=100").json()["results"]}
    assert set(listed.values()) >= {None, 1, 2, 3, "completed"}, listed
    for number, level in listed.items():
        with django_assert_num_queries(4):
            body = api.get(f"orders/{number}").json()
        assert body["dunning_level"] == level, number
        assert len(body["reminders"]) == body["reminders_sent"]


def test_other_accounts_order_is_404_like_a_missing_one(api, invoice):
    other = SalesAccountFactory(name="eBay")
    OrderFactory(sales_account=other, payment_method=invoice, number="H-1")
    assert_problem(api.get("orders/H-1"), 404)
    assert_problem(api.get("orders/NOPE"), 404)
    assert_problem(api.post("orders/H-1/dunning-block", {"reason": "x"}), 404)
    assert_problem(api.delete("orders/H-1/dunning-block"), 404)
    # a PUT of the same number creates this account's own order, the other one stays untouched
    assert api.put("orders/H-1", order_body()).status_code == 201
    assert Order.objects.filter(number="H-1").count() == 2


# --- list -----------------------------------------------------------------------------------------

def test_list_filters_and_cursor_pagination(api, account, invoice, now):
    DunningConfigFactory(sales_account=account, payment_method=invoice)
    for i in range(5):
        OrderFactory(sales_account=account, payment_method=invoice, number=f"L-{i}", ordered_at=berlin(2026, 9, 1))
    OrderFactory(sales_account=account, payment_method=invoice, number="L-paid", paid_at=now)
    OrderFactory(sales_account=SalesAccountFactory(name="eBay"), payment_method=invoice, number="X")
    seen, url = [], "orders?page_size=2"
    while url:
        page = api.get(url.split("/api/v1/")[-1]).json()
        seen += [o["number"] for o in page["results"]]
        url = page["next"]
    assert sorted(seen) == sorted([f"L-{i}" for i in range(5)] + ["L-paid"])
    assert {o["number"] for o in api.get("orders?open=false").json()["results"]} == {"L-paid"}
    assert len(api.get("orders?open=true").json()["results"]) == 5
    level1 = api.get("orders?dunning_level=1").json()["results"]
    assert len(level1) == 5 and all(o["dunning_level"] == 1 for o in level1)
    assert api.get("orders?dunning_level=completed").json()["results"] == []
    future = (timezone.now() + datetime.timedelta(hours=1)).isoformat()
    assert api.client.get("/api/v1/orders", {"updated_since": future}).json()["results"] == []


def test_updated_since_sees_service_updates(api, account, invoice, now):
    order = OrderFactory(sales_account=account, payment_method=invoice, number="U-1")
    Order.objects.filter(pk=order.pk).update(updated_at=berlin(2020, 1, 1))
    since = "2021-01-01T00:00:00+00:00"
    assert api.client.get("/api/v1/orders", {"updated_since": since}).json()["results"] == []
    from orders.services import orders_block_dunning
    orders_block_dunning(order_ids=[order.id], reason="x", user=None, now=now)
    results = api.client.get("/api/v1/orders", {"updated_since": since}).json()["results"]
    assert [o["number"] for o in results] == ["U-1"]


@pytest.mark.parametrize("query,field", [
    ("dunning_level=7", "dunning_level"), ("open=maybe", "open"), ("updated_since=soon", "updated_since"),
    # local midnight of the year 1 in Berlin, and the last second of 9999 west of UTC: outside UTC's years
    ("updated_since=0001-01-01", "updated_since"), ("updated_since=9999-12-31T23:59:59-12:00", "updated_since")])
def test_list_bad_filters_are_400(api, query, field):
    assert_problem(api.client.get(f"/api/v1/orders?{query}"), 400, field)


def test_updated_since_at_the_edges_of_the_calendar(api, account, invoice):
    OrderFactory(sales_account=account, payment_method=invoice, number="E-1")
    earliest = api.client.get("/api/v1/orders", {"updated_since": "0001-01-01T00:00:00+00:00"})
    assert [o["number"] for o in earliest.json()["results"]] == ["E-1"]
    assert api.client.get("/api/v1/orders", {"updated_since": "9999-12-31T23:59:59+00:00"}).json()["results"] == []


@pytest.mark.parametrize("path", ["/api/v1/orders/%00", "/api/v1/orders/A%00B/dunning-block", "/api/v1/nothing"])
def test_requests_no_api_view_answers_get_a_problem_document(api, path):
    """A NUL in the path (refused before any view: PostgreSQL text cannot hold it) and an unknown
    path are answered as every API answer is, not with an HTML page or a 500."""
    doc = assert_problem(api.client.get(path), 404 if path.endswith("nothing") else 400)
    assert doc["detail"]


def test_bad_cursor_is_404_problem(api):
    response = api.client.get("/api/v1/orders?cursor=garbage")
    assert response.status_code == 404 and response["Content-Type"].startswith(PROBLEM)


# --- dunning block --------------------------------------------------------------------------------

def test_block_and_unblock_with_audit(api, account, invoice, now):
    order = OrderFactory(sales_account=account, payment_method=invoice, number="K-1")
    assert_problem(api.post("orders/K-1/dunning-block", {}), 400, "reason")
    assert_problem(api.post("orders/K-1/dunning-block", {"reason": "x" * 201}), 400, "reason")
    assert_problem(api.post("orders/K-1/dunning-block", {"reason": "dis\x00putes"}), 400, "reason")
    assert_problem(api.post("orders/K-1/dunning-block", {"reason": "two\nlines"}), 400, "reason")
    body = api.post("orders/K-1/dunning-block", {"reason": "customer disputes"}).json()
    assert body["dunning_blocked"] is True and body["dunning_block_reason"] == "customer disputes"
    assert api.post("orders/K-1/dunning-block", {"reason": "again"}).status_code == 200  # idempotent
    assert api.delete("orders/K-1/dunning-block").json()["dunning_blocked"] is False
    assert api.delete("orders/K-1/dunning-block").status_code == 200
    actions = list(order.events.values_list("action", flat=True))
    assert sorted(actions) == ["dunning_blocked", "dunning_unblocked"]


def test_block_paid_order_is_409(api, account, invoice, now):
    OrderFactory(sales_account=account, payment_method=invoice, number="K-2", paid_at=now)
    assert_problem(api.post("orders/K-2/dunning-block", {"reason": "x"}), 409)


# --- rate limit, schema, docs ---------------------------------------------------------------------

def test_rate_limit_429_with_retry_after(api, settings):
    from django.core.cache import cache
    cache.clear()
    settings.API_RATE_LIMIT = "3/m"
    codes = [api.get("orders").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    response = api.get("orders")
    assert_problem(response, 429)
    assert int(response["Retry-After"]) >= 1
    cache.clear()


def test_every_answer_but_a_401_says_the_quota_left(api, settings, client):
    settings.API_RATE_LIMIT = "3/m"
    answers = [api.get("orders"), api.get("orders/nope"), api.get("orders?dunning_level=9"), api.get("orders")]
    assert [r.status_code for r in answers] == [200, 404, 400, 429]
    assert [r["RateLimit-Remaining"] for r in answers] == ["2", "1", "0", "0"]
    assert {r["RateLimit-Limit"] for r in answers} == {"3"}
    assert all(1 <= int(r["RateLimit-Reset"]) <= 60 for r in answers)
    assert int(answers[-1]["Retry-After"]) >= 1
    assert "RateLimit-Remaining" not in client.get("/api/v1/orders")  # no key: nothing to count against


def test_schema_and_docs_without_cdn(client):
    schema = client.get("/api/v1/schema/")
    assert schema.status_code == 200 and b"/api/v1/orders/{number}" in schema.content
    docs = client.get("/api/v1/docs/")
    html = docs.content.decode()
    assert docs.status_code == 200 and "cdn" not in html.lower() and "<style" not in html
    assert "script-src 'self'" in docs["Content-Security-Policy"]
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    script = client.get("/api/v1/docs/?script=")
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")


def test_bad_rate_limit_setting_stops_the_app_with_one_line():
    import os
    import subprocess
    import sys

    env = {**os.environ, "API_RATE_LIMIT": "lots", "DJANGO_DEBUG": "true", "DJANGO_SETTINGS_MODULE": "config.settings"}
    result = subprocess.run([sys.executable, "manage.py", "check"], capture_output=True, text=True, env=env)
    assert result.returncode != 0
    assert "API_RATE_LIMIT must look like 50/s" in result.stderr


# --- customer_is_business (optional, as the CSV column) -----------------------------------------------

def test_put_sets_customer_is_business_and_get_returns_it(api):
    r = api.put("orders/B-1", order_body(customer_is_business=True))
    assert r.status_code == 201 and r.json()["customer_is_business"] is True
    assert api.put("orders/B-1", order_body()).json()["customer_is_business"] is True  # absent: unchanged
    assert api.put("orders/B-1", order_body(customer_is_business=None)).json()["customer_is_business"] is True
    assert api.put("orders/B-1", order_body(customer_is_business=False)).json()["customer_is_business"] is False
    assert api.get("orders/B-1").json()["customer_is_business"] is False
    assert api.put("orders/C-1", order_body()).json()["customer_is_business"] is False  # a new order: false


@pytest.mark.parametrize("value", ["true", "ja", 1, [True]])
def test_customer_is_business_must_be_a_json_boolean(api, value):
    assert_problem(api.put("orders/B-1", order_body(customer_is_business=value)), 400, field="customer_is_business")
    assert not Order.objects.exists()


def test_bulk_sets_customer_is_business_all_or_nothing(api):
    items = [{**order_body(customer_is_business=True), "number": "B-1"}, {**order_body(), "number": "B-2"}]
    r = api.post("orders/bulk", {"orders": items})
    assert r.status_code == 200 and r.json()["created"] == 2
    assert dict(Order.objects.values_list("number", "customer_is_business")) == {"B-1": True, "B-2": False}
    items[1]["customer_is_business"] = "maybe"
    items[0]["customer_is_business"] = False
    doc = assert_problem(api.post("orders/bulk", {"orders": items}), 400, field="customer_is_business")
    assert doc["errors"][0]["index"] == 1
    assert Order.objects.get(number="B-1").customer_is_business is True  # nothing written


ADDRESS = {"customer_number": "K-1", "customer_street": "Lindenallee 5", "customer_postcode": "80331",
           "customer_city": "München", "customer_country": "DE"}


def test_put_sets_the_postal_address_and_get_returns_it(api):
    r = api.put("orders/L-1", order_body(**ADDRESS))
    assert r.status_code == 201 and {k: r.json()[k] for k in ADDRESS} == ADDRESS
    # absent or empty: the stored address stays (as for the CSV import)
    assert {k: api.put("orders/L-1", order_body()).json()[k] for k in ADDRESS} == ADDRESS
    assert api.put("orders/L-1", order_body(customer_city="Augsburg", customer_country="at")).json()[
        "customer_country"] == "AT"
    assert Order.objects.get(number="L-1").customer_city == "Augsburg"


@pytest.mark.parametrize("field, value", [("customer_country", "Deutschland"), ("customer_street", "x" * 201),
                                          ("customer_postcode", 80331)])
def test_bad_postal_address_is_400(api, field, value):
    assert_problem(api.put("orders/L-1", order_body(**{field: value})), 400, field=field)
    assert not Order.objects.exists()
