"""common.bulk on PostgreSQL inside a pipeline (the sender's write-back): the statements all apply,
an error of any of them is Django's error and rolls the transaction back, and many rows go in by
INSERT since COPY cannot run in a pipeline."""

import datetime

import pytest
from django.db import IntegrityError, connection, transaction

from common.bulk import insert_values, pipelined
from orders.models import Order, OrderEvent
from tests.factories import OrderFactory

AT = datetime.datetime(2026, 11, 30, 9, tzinfo=datetime.UTC)


def log(orders, n_each=1):
    return [(o.id, OrderEvent.Action.REMINDER_SENT.value, None, AT, {"level": 1, "i": i})
            for o in orders for i in range(n_each)]


COLUMNS = ["order_id", "action", "user_id", "at", "details"]


def test_statements_in_a_pipeline_all_apply(require_postgres):
    orders = [OrderFactory() for _ in range(3)]
    with transaction.atomic(), pipelined():
        Order.objects.filter(id=orders[0].id).update(dunning_blocked=True)
        insert_values(OrderEvent, COLUMNS, log(orders, n_each=20))  # 60 rows: COPY outside a pipeline
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM orders_orderevent WHERE action = %s",
                           [OrderEvent.Action.REMINDER_SENT.value])
            assert cursor.fetchone() == (60,)
    assert Order.objects.get(id=orders[0].id).dunning_blocked
    assert sorted(OrderEvent.objects.filter(action=OrderEvent.Action.REMINDER_SENT)
                  .values_list("details__i", flat=True))[-3:] == [19, 19, 19]


def test_an_error_in_a_pipeline_is_djangos_and_rolls_back(require_postgres):
    order = OrderFactory()
    with pytest.raises(IntegrityError), transaction.atomic(), pipelined():
        Order.objects.filter(id=order.id).update(dunning_blocked=True)
        insert_values(OrderEvent, COLUMNS, log([order]))
        Order.objects.filter(id=order.id).update(reminders_sent=3)  # breaks a check: no last reminder's date
        Order.objects.filter(id=order.id).update(flagged_for_cancellation_at=AT)
    assert not Order.objects.get(id=order.id).dunning_blocked
    assert not OrderEvent.objects.filter(action="reminder_sent").exists()


def test_outside_postgresql_a_pipeline_is_nothing(db):
    order = OrderFactory()
    with transaction.atomic(), pipelined():
        Order.objects.filter(id=order.id).update(dunning_blocked=True)
    assert Order.objects.get(id=order.id).dunning_blocked
