"""The OpenAPI schema tells the truth: every answer of every operation, success or problem, has its
status documented for that operation and a body that validates against the documented schema
(JSON Schema 2020-12, as OpenAPI 3.1 is). Also: the API answers in English whatever the client's
Accept-Language, and `page_size` is checked like the other filters."""

import datetime
import json
import re
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.utils import timezone
from jsonschema import Draft202012Validator

from dunning.models import Reminder
from tests.api import test_api
from tests.api.test_api import assert_problem, order_body
from tests.factories import OrderFactory, ReminderFactory

key, api, _fresh_rate_limit = test_api.key, test_api.api, test_api._fresh_rate_limit
TODAY = timezone.localdate().isoformat()


@pytest.fixture
def schema(client):
    response = client.get("/api/v1/schema/?format=json")
    assert response.status_code == 200
    doc = json.loads(response.content)
    assert doc["openapi"].startswith("3.1")
    return doc


def _operation(schema: dict, method: str, path: str) -> dict:
    """The operation whose path template matches `path` (the API's paths hold no slash in a parameter)."""
    for template, operations in schema["paths"].items():
        pattern = "^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and method in operations:
            return operations[method]
    raise AssertionError(f"{method.upper()} {path} is not in the schema")


def conforms(schema: dict, method: str, path: str, response) -> dict:
    """Assert that `response` is documented for the operation and matches its schema; returns its JSON."""
    operation = _operation(schema, method, path)
    documented = operation["responses"]
    status = str(response.status_code)
    assert status in documented, f"{method.upper()} {path} answered {status}, documented: {sorted(documented)}"
    media_type = response["Content-Type"].split(";")[0]
    content = documented[status].get("content", {})
    assert media_type in content, f"{status} of {method.upper()} {path} as {media_type}, documented: {list(content)}"
    body = json.loads(response.content)
    validator = Draft202012Validator({**content[media_type]["schema"], "components": schema["components"]})
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)]
    assert not errors, f"{method.upper()} {path} {status}: {errors}"
    return body


@pytest.fixture
def order(account, invoice):
    return OrderFactory(sales_account=account, payment_method=invoice, number="S-1", total=Decimal("49.90"),
                        ordered_at=timezone.now() - datetime.timedelta(days=40))


def test_every_answer_of_every_operation_is_documented_and_matches_its_schema(schema, api, order, settings):
    ReminderFactory(order=order, level=1, status=Reminder.Status.SENT)
    OrderFactory(sales_account=order.sales_account, payment_method=order.payment_method, number="S-2",
                 paid_at=timezone.now())  # paid: its dunning block answers 409
    calls = [
        ("get", "orders", None, 200),
        ("get", "orders?page_size=1", None, 200),
        ("get", "orders?dunning_level=completed&open=TRUE&updated_since=2026-01-01&page_size=", None, 200),
        ("get", "orders?dunning_level=7", None, 400),
        ("get", "orders?page_size=0", None, 400),
        ("get", "orders?cursor=nonsense", None, 404),
        ("get", "orders/S-1", None, 200),
        ("get", "orders/nope", None, 404),
        ("put", "orders/S-9", order_body(), 201),
        ("put", "orders/S-9", order_body(customer_is_business=True, language="EN", customer_country=" de "), 200),
        ("put", "orders/S-9", order_body(total=12.5), 400),
        ("put", "orders/S-9", order_body(reminders_sent=3), 400),
        ("post", "orders/bulk", {"orders": [{**order_body(), "number": "S-10"}]}, 200),
        ("post", "orders/bulk", {"orders": "S-10"}, 400),
        ("post", "orders/S-1/dunning-block", {"reason": "disputed"}, 200),
        ("post", "orders/S-1/dunning-block", {"reason": "two\nlines"}, 400),
        ("post", "orders/nope/dunning-block", {"reason": "x"}, 404),
        ("post", "orders/S-2/dunning-block", {"reason": "x"}, 409),
        ("delete", "orders/S-1/dunning-block", None, 200),
        ("delete", "orders/S-2/dunning-block", None, 409),
        ("post", "payments", {"order_number": "S-1", "amount": "10.00", "currency": "EUR", "booked_on": TODAY,
                              "transaction_id": "t-1"}, 201),
        ("post", "payments", {"order_number": "S-1", "amount": "10.00", "currency": "EUR", "booked_on": TODAY,
                              "transaction_id": "t-1"}, 200),
        ("post", "payments", {"order_number": "S-1", "amount": "0", "currency": "EUR", "booked_on": TODAY,
                              "transaction_id": "t-2"}, 400),
        ("post", "payments", {"order_number": "nope", "amount": "1.00", "currency": "EUR", "booked_on": TODAY,
                              "transaction_id": "t-3"}, 404),
    ]
    for method, path, body, status in calls:
        response = getattr(api, method)(path, body)
        assert response.status_code == status, (method, path, response.content)
        conforms(schema, method, "/api/v1/" + path.split("?")[0], response)

    # the answers every operation can give: no key (401), a body not JSON (415), too large (413), too many (429)
    anonymous = Client()
    for method, path in [("get", "orders"), ("get", "orders/S-1"), ("put", "orders/S-1"), ("post", "orders/bulk"),
                         ("post", "orders/S-1/dunning-block"), ("delete", "orders/S-1/dunning-block"),
                         ("post", "payments")]:
        response = getattr(anonymous, method)("/api/v1/" + path, content_type="application/json")
        assert response.status_code == 401
        conforms(schema, method, "/api/v1/" + path, response)
        if method in ("put", "post"):
            response = getattr(api.client, method)("/api/v1/" + path, data="a=1", content_type="text/plain")
            assert response.status_code == 415, response.content
            conforms(schema, method, "/api/v1/" + path, response)
            settings.API_MAX_BODY_BYTES = 10
            response = getattr(api, method)(path, {"reason": "more than ten bytes"})
            settings.API_MAX_BODY_BYTES = 2 * 1024 * 1024
            assert response.status_code == 413
            conforms(schema, method, "/api/v1/" + path, response)
    settings.API_RATE_LIMIT = "1/m"
    api.get("orders")
    response = api.get("orders/S-1")
    assert response.status_code == 429
    conforms(schema, "get", "/api/v1/orders/S-1", response)


def test_the_list_is_documented_as_the_page_it_is(schema, api, order):
    page = conforms(schema, "get", "/api/v1/orders", api.get("orders?page_size=1"))
    assert set(page) == {"next", "previous", "results"} and page["results"][0]["number"] == "S-1"
    ok = schema["paths"]["/api/v1/orders"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/OrderPage"}


def test_a_schema_that_lied_would_fail(schema, api, order):
    """The check itself: a body the schema does not allow is caught (here: dunning_level as a string)."""
    response = api.get("orders/S-1")
    lying = json.loads(response.content) | {"dunning_level": "1"}
    response.content = json.dumps(lying).encode()
    with pytest.raises(AssertionError, match="dunning_level"):
        conforms(schema, "get", "/api/v1/orders/S-1", response)


def test_unknown_fields_are_refused_and_the_schema_says_so(schema, api):
    components = schema["components"]["schemas"]
    assert all(components[name]["additionalProperties"] is False for name in ("OrderIn", "BulkItem", "PaymentIn"))
    assert_problem(api.put("orders/S-9", order_body(colour="red")), 400, "colour")


@pytest.mark.parametrize("language", ["de", "de-DE,de;q=0.9", "en"])
def test_the_api_answers_in_english_whatever_the_accept_language(language, api):
    anonymous = Client(HTTP_ACCEPT_LANGUAGE=language)
    doc = assert_problem(anonymous.get("/api/v1/orders"), 401)
    assert doc["detail"] == "Authentication credentials were not provided."
    response = api.client.get("/api/v1/orders?cursor=nonsense", HTTP_ACCEPT_LANGUAGE=language)
    assert assert_problem(response, 404)["detail"].startswith("Invalid cursor")
    assert response["Content-Language"] == "en"
    response = api.client.patch("/api/v1/orders/S-1", HTTP_ACCEPT_LANGUAGE=language)
    assert assert_problem(response, 405)["detail"] == 'Method "PATCH" not allowed.'


def test_the_back_office_still_speaks_german(client):
    response = client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="de")
    assert response["Content-Language"] == "de"


@pytest.mark.parametrize("value", ["0", "-1", "abc", "1.5", " 5", "５"])
def test_a_bad_page_size_is_a_400(value, api):
    assert_problem(api.get(f"orders?page_size={value}"), 400, "page_size")


def test_a_page_size_above_the_maximum_gives_the_maximum(api, account, invoice):
    OrderFactory.create_batch(3, sales_account=account, payment_method=invoice)
    page = api.get("orders?page_size=100000").json()
    assert len(page["results"]) == 3 and page["next"] is None


@pytest.mark.parametrize("value", ["2026-11-26", "2026-11-26T10", "2026-11-26 10:00:00.123456", "2026-11-26T10:00:00Z",
                                   "2026-11-26T10:00:00+01", "2026-11-26T10:00+01:00", "2026-11-26T10:00:00-0530"])
def test_every_updated_since_the_schema_allows_is_accepted(value, schema, api):
    pattern = next(p["schema"]["pattern"] for p in schema["paths"]["/api/v1/orders"]["get"]["parameters"]
                   if p["name"] == "updated_since")
    assert re.match(pattern, value)
    response = api.get("orders?" + urlencode({"updated_since": value}))
    assert response.status_code == 200, response.content


@pytest.mark.parametrize("value", ["2026-11-26x", "26.11.2026", "2026-11-26T24:00"])
def test_an_updated_since_the_schema_refuses_is_a_400(value, schema, api):
    pattern = next(p["schema"]["pattern"] for p in schema["paths"]["/api/v1/orders"]["get"]["parameters"]
                   if p["name"] == "updated_since")
    assert not re.match(pattern, value)
    assert_problem(api.get("orders?" + urlencode({"updated_since": value})), 400, "updated_since")


# --- webhooks: the bodies we POST ----------------------------------------------------------------

def test_every_event_type_is_documented_and_its_bodies_match(schema, account, invoice, prepayment, settings, now):
    """Each event type made by the service that emits it, its delivered body validated against the
    schema's `webhooks` entry."""
    from dunning import services as dunning_services
    from dunning.models import DunningConfig
    from orders.services import orders_cancel, orders_mark_paid
    from payments.services import payment_record_api
    from tests.factories import DunningConfigFactory, ReminderAssignmentFactory, berlin
    from webhooks.delivery import request_parts
    from webhooks.models import EventType, WebhookEndpoint, WebhookEvent

    settings.WEBHOOK_ALLOW_PRIVATE = True
    endpoint = WebhookEndpoint.objects.create(sales_account=account, url="http://127.0.0.1:9/hook")
    assert set(schema["webhooks"]) == set(EventType.values)

    DunningConfigFactory(sales_account=account, payment_method=invoice)
    ReminderAssignmentFactory(sales_account=account, level=1, send_automatically=True)
    OrderFactory(sales_account=account, payment_method=invoice, ordered_at=berlin(2026, 9, 1))
    DunningConfigFactory(sales_account=account, payment_method=prepayment, cancel_after_days=14,
                         cancellation_action=DunningConfig.CancellationAction.FLAG)
    OrderFactory(sales_account=account, payment_method=prepayment, ordered_at=now - datetime.timedelta(days=20))
    dunning_services.dunning_run_execute(now=now)  # reminder.sent, order.flagged_for_cancellation
    paid = OrderFactory(sales_account=account, payment_method=invoice, number="P-1", total=Decimal("10.00"))
    orders_mark_paid(order_ids=[paid.id], paid_at=now, user=None, now=now)  # order.paid
    cancelled = OrderFactory(sales_account=account, payment_method=prepayment, flagged_for_cancellation_at=now)
    orders_cancel(order_ids=[cancelled.id], release_reservation=True, user=None, now=now)  # order.cancelled
    payment_record_api(sales_account_id=account.id, order_number="P-1", amount=Decimal("10.00"), currency="EUR",
                       booked_on=now.date(), transaction_id="late", now=now)  # payment.unmatched (P-1 is paid)

    seen = set()
    for event in WebhookEvent.objects.all():
        body = json.loads(request_parts(event, endpoint, now=now)[1])
        content = schema["webhooks"][event.type]["post"]["requestBody"]["content"]["application/json"]["schema"]
        validator = Draft202012Validator({**content, "components": schema["components"]})
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)]
        assert not errors, (event.type, body, errors)
        wrong = body | {"type": "order.paid" if event.type != "order.paid" else "order.cancelled"}
        assert not validator.is_valid(wrong)  # each entry holds only its own type
        seen.add(event.type)
    assert seen == set(EventType.values)


def test_every_example_in_the_schema_matches_its_schema(schema):
    """The examples the docs page shows are answers the schema allows (a wrong example teaches a wrong client)."""
    checked = 0
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                for media_type, content in answer.get("content", {}).items():
                    validator = Draft202012Validator({**content["schema"], "components": schema["components"]})
                    for name, example in content.get("examples", {}).items():
                        errors = [e.message for e in validator.iter_errors(example["value"])]
                        assert not errors, (method, path, status, media_type, name, errors)
                        assert example["value"].get("status") in (None, int(status))
                        checked += 1
    assert checked >= 30  # every operation's problem answers carry one


def test_an_unknown_query_parameter_is_a_400_after_the_key_is_checked(schema, api, order):
    """A misspelt filter would otherwise list every order; bodies refuse unknown fields the same way."""
    doc = assert_problem(api.get("orders?dunning_levle=1&open=true"), 400, "dunning_levle")
    assert "cursor, dunning_level, open, page_size, updated_since" in doc["errors"][0]["detail"]
    for method, path in [("get", "orders/S-1?x=1"), ("delete", "orders/S-1/dunning-block?force=1"),
                         ("post", "payments?dry_run=1")]:
        response = getattr(api, method)(path, {} if method == "post" else None)
        assert_problem(response, 400, path.split("?")[1].split("=")[0])
        conforms(schema, method, "/api/v1/" + path.split("?")[0], response)
    assert Client().get("/api/v1/orders?dunning_levle=1").status_code == 401
    assert api.get("orders?page_size=5&cursor=").status_code == 200  # the parameters it takes still work


def test_a_day_the_month_lacks_is_a_400_that_says_what_is_accepted(api):
    doc = assert_problem(api.get("orders?updated_since=2026-06-31"), 400, "updated_since")
    assert doc["errors"][0]["detail"].startswith("must be an existing ISO 8601 date or date-time")
