"""The API against its own schema, by schemathesis: for every operation, requests generated from the
schema (valid ones and ones the schema forbids) go through the WSGI app, and each answer must be no
server error, a documented status and content type, a body matching its schema, and a refusal of
what the schema forbids. Not checked: that every request the schema allows is accepted — an unknown
payment method code, a currency outside ISO 4217 or a date in the future are 400s no schema can
express (docs/rules/api-and-webhooks.md). Derandomized, so a run is the same every time."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from accounts.services import api_key_create
from tests.factories import OrderFactory, PaymentMethodFactory, SalesAccountFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def api_schema(db):
    """The schema, loaded from the app as a client would; requests go through the WSGI app. Like
    Django's test client, the requests leave the database connection open: it holds the test's
    transaction."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    from config.wsgi import application

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", application)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def key(db, settings):
    settings.API_RATE_LIMIT = "100000/s"
    from django.core.cache import cache

    cache.clear()
    account = SalesAccountFactory(name="Webshop")
    method = PaymentMethodFactory(code="invoice")
    for number in ("0", "A-1"):
        OrderFactory(sales_account=account, payment_method=method, number=number)
    return api_key_create(sales_account=account, name="fuzz")[1]


OPERATIONS = [("GET", "/api/v1/orders"), ("GET", "/api/v1/orders/{number}"), ("PUT", "/api/v1/orders/{number}"),
              ("POST", "/api/v1/orders/bulk"), ("POST", "/api/v1/orders/{number}/dunning-block"),
              ("DELETE", "/api/v1/orders/{number}/dunning-block"), ("POST", "/api/v1/payments")]


def test_the_fuzzed_operations_are_all_of_the_schema(api_schema):
    assert {(r.ok().method.upper(), r.ok().path) for r in api_schema.get_all_operations()} == set(OPERATIONS)


# Negative cases need something the schema constrains: a query or a body. GET and DELETE of one order
# have only the number in the path, which may be any text, so they get positive cases only.
CASES = [(method, path, GenerationMode.POSITIVE) for method, path in OPERATIONS] + [
    (method, path, GenerationMode.NEGATIVE) for method, path in OPERATIONS
    if not (method in ("GET", "DELETE") and path.endswith(("{number}", "dunning-block")))]


@pytest.mark.parametrize("method,path,mode", CASES)
def test_the_api_keeps_to_its_schema(method, path, mode, api_schema, key):
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode, headers={"Authorization": f"Bearer {key}"}))
    @settings(max_examples=40, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case):
        case.call_and_validate(excluded_checks=[positive_data_acceptance])

    check()
