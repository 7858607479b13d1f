"""The overview's totals read only order_open_sent_date_idx (`currency` added to it), and the
orders table is vacuumed after 0.2 % of its rows plus 500 changed instead of 20 % (PostgreSQL only).

An index-only scan visits the table for every entry on a page that VACUUM has not marked
all-visible since it last changed. With PostgreSQL's defaults autovacuum waits for 20 % of the
rows (200,000 of a million) to change, so the overview's totals went from reading an index to
reading most of the table long before it came: each changed order costs the totals about five
visits of the table (the open orders on its page). At 0.2 % plus 500 rows (2,500 at a million
orders) autovacuum runs often, and each run is short: it reads only the pages changed since the
one before (the visibility map), and skips the indexes while few pages have dead rows.
docs/performance-notes.md has the measurements."""

from django.db import migrations, models

TABLE = "orders_order"
SETTINGS = {
    "autovacuum_vacuum_scale_factor": "0.002",
    "autovacuum_vacuum_threshold": "500",
    "autovacuum_vacuum_insert_scale_factor": "0.002",
    "autovacuum_vacuum_insert_threshold": "500",
    "autovacuum_analyze_scale_factor": "0.01",
    "autovacuum_analyze_threshold": "1000",
}


def set_autovacuum(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        pairs = ", ".join(f"{name} = {value}" for name, value in SETTINGS.items())
        schema_editor.execute(f"ALTER TABLE {TABLE} SET ({pairs})")


def reset_autovacuum(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE {TABLE} RESET ({', '.join(SETTINGS)})")


OPEN = models.Q(("cancelled_at__isnull", True), ("paid_at__isnull", True))


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("orders", "0008_orderevent_undo_and_email"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="order", name="order_open_sent_date_idx"),
        migrations.AddIndex(
            model_name="order",
            index=models.Index(
                condition=OPEN,
                fields=["reminders_sent", "ordered_at", "id", "sales_account", "payment_method", "last_reminder_at",
                        "total", "dunning_blocked", "currency"],
                name="order_open_sent_date_idx",
            ),
        ),
        migrations.RunPython(set_autovacuum, reset_autovacuum),
    ]
