import datetime
import os
import shutil

import pytest
from django.db import connection

from tests.factories import (
    DunningConfigFactory,
    PaymentMethodFactory,
    ReminderAssignmentFactory,
    SalesAccountFactory,
    UserFactory,
    berlin,
)
from tests.letters_support import needs_qr_reader, needs_weasyprint  # noqa: F401 (fixtures of the letter tests)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With MAHNWESEN_NO_SKIP=1 (CI, where PostgreSQL, Redis and Chromium are all present) a test
    that skips for a missing service fails instead: there everything must run."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("MAHNWESEN_NO_SKIP") == "1" and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped where everything must run (MAHNWESEN_NO_SKIP=1): {report.longrepr}"


@pytest.fixture
def now() -> datetime.datetime:
    """The tests' clock: the one "now" of every test that works at a fixed time (Thursday 26.11.2026,
    10:00 in Berlin). Services take it explicitly; dates in the tests are written relative to it."""
    return berlin(2026, 11, 26, 10, 0)


@pytest.fixture
def require_postgres(db):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL=postgres://...): row locks and concurrency")


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def account(db):
    return SalesAccountFactory(name="Webshop")


@pytest.fixture
def invoice(db):
    return PaymentMethodFactory(code="invoice", name="Rechnung", payment_term_days=14)


@pytest.fixture
def prepayment(db):
    return PaymentMethodFactory(code="prepayment", name="Vorkasse", is_prepayment=True, payment_term_days=0)


@pytest.fixture
def config(account, invoice):
    return DunningConfigFactory(sales_account=account, payment_method=invoice)


@pytest.fixture
def assignments(account):
    return [ReminderAssignmentFactory(sales_account=account, level=level) for level in (1, 2, 3)]


@pytest.fixture
def support_user(db):
    return UserFactory(username="support", is_staff=True, is_superuser=True)


@pytest.fixture
def backoffice_user(db):
    return UserFactory(username="backoffice", is_staff=True, groups=["Back office"])


@pytest.fixture
def outsider_user(db):
    """Staff, but not in the back-office group."""
    return UserFactory(username="outsider", is_staff=True)


@pytest.fixture(autouse=True)
def _forget_learnt_backends():
    """What a process learnt about an e-mail backend (whether its calls wait) is per test."""
    from dunning.services import sending

    sending._LEARNT.clear()
    yield
    sending._LEARNT.clear()
