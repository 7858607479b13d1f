"""Fixtures of the back-office page tests. The views use the real clock, so orders are placed
relative to today (in TIME_ZONE): `place(overdue=16)` is an invoice order 16 days overdue."""

import datetime

import pytest
from django.utils import timezone

from dunning.selectors import local_midnight, local_today
from tests.factories import OrderFactory, ReminderFactory


@pytest.fixture
def today() -> datetime.date:
    return local_today(timezone.now())


@pytest.fixture
def place(config, invoice, account, today):
    """Build an order of the active Webshop/invoice config (payment term 14 days, levels 7/14/21,
    7 days between reminders) that is `overdue` days overdue today."""

    def _place(overdue: int = 10, *, sent: int = 0, last_days_ago: int = 10, **kwargs):
        ordered_on = today - datetime.timedelta(days=overdue + invoice.payment_term_days)
        kwargs.setdefault("sales_account", account)
        kwargs.setdefault("payment_method", invoice)
        at = local_midnight(today - datetime.timedelta(days=last_days_ago)) + datetime.timedelta(hours=9)
        order = OrderFactory(
            ordered_at=local_midnight(ordered_on) + datetime.timedelta(hours=12),
            reminders_sent=sent,
            last_reminder_at=at if sent else None,
            **kwargs,
        )
        for level in range(1, sent + 1):
            ReminderFactory(order=order, level=level, created_at=at, sent_at=at)
        return order

    return _place


@pytest.fixture
def bo_client(client, backoffice_user):
    client.force_login(backoffice_user)
    return client


@pytest.fixture
def now_real():
    return timezone.now()
