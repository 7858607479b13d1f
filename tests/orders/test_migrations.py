"""orders 0009: the overview's totals read only order_open_sent_date_idx (currency in it), and the
orders table gets its own autovacuum thresholds on PostgreSQL; the migration goes back and forth."""

import importlib

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

MIGRATION = importlib.import_module("orders.migrations.0009_open_index_currency_autovacuum")
BEFORE = ("orders", "0008_orderevent_undo_and_email")


def reloptions() -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'orders_order'")
        options = cursor.fetchone()[0] or []
    return dict(option.split("=", 1) for option in options)


def index_columns() -> list[str]:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "orders_order")
    return constraints["order_open_sent_date_idx"]["columns"]


def migrate(target=None) -> None:
    """To `target`, or (None) forward to the latest migration of every app: the schema the other
    tests expect (only back to 0009 would leave the orders' later columns missing for them)."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target] if target else executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_0008_sets_autovacuum_and_currency_in_the_index_and_reverses(require_postgres):
    assert reloptions() == MIGRATION.SETTINGS
    assert index_columns()[-1] == "currency"
    try:
        migrate(BEFORE)
        assert reloptions() == {}
        assert "currency" not in index_columns()
    finally:
        migrate()
    assert reloptions() == MIGRATION.SETTINGS
    assert index_columns()[-1] == "currency"


@pytest.mark.django_db
def test_0008_index_holds_what_the_totals_read():
    """Every column level_totals reads is in the index: amount, currency and the rule's columns."""
    columns = index_columns()
    for name in ("reminders_sent", "ordered_at", "sales_account_id", "payment_method_id", "last_reminder_at",
                 "total", "dunning_blocked", "currency"):
        assert name in columns
