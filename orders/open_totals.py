"""The open orders' totals, kept by the database: how many open orders and how much money per
key (sales account, payment method, currency, blocked, reminders sent, local order day, local day
of the last reminder), so that the overview's tabs sum a few thousand buckets instead of reading
100,000 open orders (docs/performance-notes.md, "The overview's totals").

Triggers on orders_order (PostgreSQL and SQLite) append to OpenTotalDelta, per change of an open
order, -1 and its total under its old key and +1 under its new one. Every writer keeps the totals
right without knowing of them: the ORM's save, update, bulk_update and delete, the COPY of
common.bulk, raw SQL. The triggers only ever INSERT (no unique key, no row updated): concurrent
writers take no lock on one another and cannot deadlock over the totals. `fold()` moves the deltas
into OpenTotal (one row per key) under a lock of its own; a read sums both tables.

The key, as the level rule (dunning.selectors) needs it:
- `ordered_day`: the local day (TIME_ZONE, baked into the triggers when they are installed) of
  `ordered_at`. With 1 or 2 reminders sent it is stored no earlier than CLAMP_DAYS before the
  reminded day: levels 2 and 3 ask "order day <= A and reminded day <= B", and for a config with
  B - A <= CLAMP_DAYS an order day more than CLAMP_DAYS before the reminded day passes the first
  test whenever the order passes the second, so those days need not be told apart (the reader
  falls back to the orders for a config with B - A > CLAMP_DAYS, or one with an "only orders
  since" day). Without it every open order with a reminder was nearly a bucket of its own.
- `reminded_day`: the local day of `last_reminder_at` with 1 or 2 reminders sent (the only levels
  whose rule reads it), else NO_DAY.

The time zone is baked into the triggers: after TIME_ZONE changed, run `manage.py
rebuild_open_totals` (until then the overview notices and reads the orders). On SQLite the triggers
call two functions this app registers on each Django connection: a write to orders_order through
another SQLite client (the sqlite3 shell) fails with "no such function".
"""

from __future__ import annotations

import datetime
import re
from functools import lru_cache
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection as default_connection
from django.db import transaction

CLAMP_DAYS = 90
NO_DAY = datetime.date(1, 1, 1)
# The ordered_day of a group row: the sums of all the keys of (account, method, currency, blocked,
# reminders sent), kept by the fold and the rebuild beside the rows of each day (never a real day).
GROUP_DAY = datetime.date(1, 1, 2)
FAR_DAY = datetime.date(9999, 12, 31)  # a local day past the end of the calendar (SQLite: OverflowError)
FOLD_AFTER = 5_000  # deltas a reader folds before it reads again (beat folds every minute anyway)

ORDERS = "orders_order"
TOTALS = "orders_opentotal"
DELTAS = "orders_opentotaldelta"
GROUP = ("sales_account_id", "payment_method_id", "currency", "dunning_blocked", "reminders_sent")
KEY = (*GROUP, "ordered_day", "reminded_day")
_FOLD_LOCK = 0x6F70656E  # pg_advisory_xact_lock key of the fold ("open")


# --- the key, in Python (SQLite's functions; the reference of the tests) ----------------------------


def local_day(value: datetime.datetime | None, tz: str) -> datetime.date | None:
    if value is None:
        return None
    try:
        return value.astimezone(ZoneInfo(tz)).date()
    except OverflowError:
        return FAR_DAY


def key_days(ordered_at: datetime.datetime, last_reminder_at: datetime.datetime | None, reminders_sent: int,
             tz: str) -> tuple[datetime.date, datetime.date]:
    """(ordered_day, reminded_day) of an order: what the triggers store."""
    ordered = local_day(ordered_at, tz)
    if reminders_sent not in (1, 2) or last_reminder_at is None:
        return ordered, NO_DAY
    reminded = local_day(last_reminder_at, tz)
    try:
        floor = reminded - datetime.timedelta(days=CLAMP_DAYS)
    except OverflowError:
        floor = ordered
    return max(ordered, floor), reminded


# --- SQLite: the key's functions, registered on each connection --------------------------------------


def _parse(value):
    from django.utils.dateparse import parse_datetime

    if value is None:
        return None
    parsed = parse_datetime(str(value).replace(" ", "T", 1))
    if parsed is None:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def _sqlite_ordered_day(ordered_at, last_reminder_at, reminders_sent, tz):
    ordered = _parse(ordered_at)
    if ordered is None:
        return None
    return key_days(ordered, _parse(last_reminder_at), int(reminders_sent or 0), tz)[0].isoformat()


def _sqlite_reminded_day(ordered_at, last_reminder_at, reminders_sent, tz):
    ordered = _parse(ordered_at)
    if ordered is None:
        return None
    return key_days(ordered, _parse(last_reminder_at), int(reminders_sent or 0), tz)[1].isoformat()


def register_sqlite_functions(sender, connection, **kwargs) -> None:
    """connection_created: the functions the SQLite triggers call."""
    if connection.vendor != "sqlite":
        return
    raw = connection.connection
    raw.create_function("orders_ordered_day", 4, _sqlite_ordered_day, deterministic=True)
    raw.create_function("orders_reminded_day", 4, _sqlite_reminded_day, deterministic=True)


# --- the triggers --------------------------------------------------------------------------------------

_OPEN = "{r}.paid_at IS NULL AND {r}.cancelled_at IS NULL"


def _pg_key(r: str, tz: str) -> list[str]:
    local_o = f"({r}.ordered_at AT TIME ZONE '{tz}')::date"
    local_l = f"({r}.last_reminder_at AT TIME ZONE '{tz}')::date"
    reminded = f"{r}.reminders_sent IN (1, 2) AND {r}.last_reminder_at IS NOT NULL"
    return [f"{r}.sales_account_id", f"{r}.payment_method_id", f"{r}.currency", f"{r}.dunning_blocked",
            f"{r}.reminders_sent",
            f"CASE WHEN {reminded} THEN GREATEST({local_o}, {local_l} - {CLAMP_DAYS}) ELSE {local_o} END",
            f"CASE WHEN {reminded} THEN {local_l} ELSE DATE '{NO_DAY.isoformat()}' END"]


def _sqlite_key(r: str, tz: str) -> list[str]:
    args = f"{r}.ordered_at, {r}.last_reminder_at, {r}.reminders_sent, '{tz}'"
    return [f"{r}.sales_account_id", f"{r}.payment_method_id", f"{r}.currency", f"{r}.dunning_blocked",
            f"{r}.reminders_sent", f"orders_ordered_day({args})", f"orders_reminded_day({args})"]


def _key(vendor: str, r: str, tz: str) -> str:
    """The key's expressions of the row `r`, each named as its column."""
    exprs = (_pg_key if vendor == "postgresql" else _sqlite_key)(r, tz)
    return ", ".join(f"{e} AS {c}" for e, c in zip(exprs, KEY, strict=True))


def _check_tz(tz: str) -> str:
    ZoneInfo(tz)  # raises for an unknown zone
    if not re.fullmatch(r"[A-Za-z0-9_+\-/]+", tz):
        raise ValueError(f"unexpected time zone name {tz!r}")
    return tz


def _pg_statements(tz: str) -> list[str]:
    columns = ", ".join(KEY)
    statements = []
    for event, parts in (
        ("insert", [("new_rows", "1")]),
        ("update", [("old_rows", "-1"), ("new_rows", "1")]),
        ("delete", [("old_rows", "-1")]),
    ):
        selects = " UNION ALL ".join(
            f"SELECT {_key('postgresql', 'r', tz)}, {sign} AS n, {sign} * r.total AS amount "  # noqa: S608
            f"FROM {rows} AS r WHERE {_OPEN.format(r='r')}" for rows, sign in parts)
        statements.append(f"""
CREATE OR REPLACE FUNCTION orders_open_totals_{event}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- time zone: {tz}
  INSERT INTO {DELTAS} ({columns}, n, amount)
  SELECT {columns}, SUM(n), SUM(amount) FROM ({selects}) AS d
  GROUP BY {columns} HAVING SUM(n) <> 0 OR SUM(amount) <> 0;
  RETURN NULL;
END $$""")  # noqa: S608 - our own names and a checked time zone name
        transition = {"insert": "NEW TABLE AS new_rows", "update": "OLD TABLE AS old_rows NEW TABLE AS new_rows",
                      "delete": "OLD TABLE AS old_rows"}[event]
        statements += [
            f"DROP TRIGGER IF EXISTS orders_open_totals_{event} ON {ORDERS}",
            f"CREATE TRIGGER orders_open_totals_{event} AFTER {event.upper()} ON {ORDERS} "
            f"REFERENCING {transition} FOR EACH STATEMENT EXECUTE FUNCTION orders_open_totals_{event}()",
        ]
    statements += [
        f"""
CREATE OR REPLACE FUNCTION orders_open_totals_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- DELETE, not TRUNCATE: a TRUNCATE of several tables (Django's flush) may name these too
  DELETE FROM {TOTALS};
  DELETE FROM {DELTAS};
  RETURN NULL;
END $$""",  # noqa: S608 - our own table names
        f"DROP TRIGGER IF EXISTS orders_open_totals_truncate ON {ORDERS}",
        f"CREATE TRIGGER orders_open_totals_truncate AFTER TRUNCATE ON {ORDERS} "
        "FOR EACH STATEMENT EXECUTE FUNCTION orders_open_totals_truncate()",
    ]
    return statements


def _sqlite_statements(tz: str) -> list[str]:
    columns = ", ".join(KEY)
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in (
        "paid_at", "cancelled_at", "total", "sales_account_id", "payment_method_id", "currency", "dunning_blocked",
        "reminders_sent", "ordered_at", "last_reminder_at"))
    statements = []
    for event, parts, when in (
        ("insert", [("NEW", "1")], ""),
        ("update", [("OLD", "-1"), ("NEW", "1")], f" WHEN {changed}"),
        ("delete", [("OLD", "-1")], ""),
    ):
        body = " ".join(
            f"INSERT INTO {DELTAS} ({columns}, n, amount) SELECT {_key('sqlite', r, tz)}, {sign}, {sign} * {r}.total "
            f"WHERE {_OPEN.format(r=r)};" for r, sign in parts)
        statements += [
            f"DROP TRIGGER IF EXISTS orders_open_totals_{event}",
            f"CREATE TRIGGER orders_open_totals_{event} AFTER {event.upper()} ON {ORDERS} FOR EACH ROW{when} "
            f"BEGIN /* time zone: {tz} */ {body} END",
        ]
    return statements


def install(connection=None, tz: str | None = None) -> None:
    """(Re)create the triggers for TIME_ZONE (or `tz`) and rebuild the totals from the orders."""
    connection = connection or default_connection
    tz = _check_tz(tz or settings.TIME_ZONE)
    statements = {"postgresql": _pg_statements, "sqlite": _sqlite_statements}.get(connection.vendor)
    if statements is None:
        return
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        for sql in statements(tz):
            cursor.execute(sql)
        rebuild(connection, tz=tz)
    installed_time_zone.cache_clear()


def rebuild(connection=None, tz: str | None = None) -> None:
    """The totals recomputed from the orders (the migration; a changed TIME_ZONE: `install`)."""
    connection = connection or default_connection
    tz = tz or settings.TIME_ZONE
    columns = ", ".join(KEY)
    key = _key(connection.vendor, "r", tz)
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"LOCK TABLE {ORDERS} IN SHARE MODE")
        cursor.execute(f"DELETE FROM {DELTAS}")  # noqa: S608 - our own names
        cursor.execute(f"DELETE FROM {TOTALS}")  # noqa: S608
        cursor.execute(
            f"INSERT INTO {TOTALS} ({columns}, n, amount) SELECT {columns}, COUNT(*), SUM(amount) "  # noqa: S608
            f"FROM (SELECT {key}, r.total AS amount FROM {ORDERS} AS r WHERE {_OPEN.format(r='r')}) "
            f"AS d GROUP BY {columns}")
        cursor.execute(_insert_groups(connection.vendor, TOTALS, ""))


@lru_cache(maxsize=4)
def installed_time_zone(alias: str = "default") -> str | None:
    """The time zone the triggers of `alias` compute local days in (None: not installed): read once
    per process from the trigger's source."""
    from django.db import connections

    connection = connections[alias]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT prosrc FROM pg_proc WHERE proname = 'orders_open_totals_insert'")
        elif connection.vendor == "sqlite":
            cursor.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' "
                           "AND name = 'orders_open_totals_insert'")
        else:
            return None
        row = cursor.fetchone()
    match = re.search(r"time zone: (\S+)", row[0]) if row else None
    return match.group(1) if match else None


def usable(alias: str = "default") -> bool:
    """Whether the totals can answer for this process: installed, in TIME_ZONE."""
    return installed_time_zone(alias) == settings.TIME_ZONE


def _insert_groups(vendor: str, source: str, where: str) -> str:
    """INSERT the group rows (GROUP_DAY) of the day rows of `source` (`where`: which of them) into
    OpenTotal, added to those there are."""
    group = ", ".join(GROUP)
    day = (lambda d: f"DATE '{d.isoformat()}'") if vendor == "postgresql" else (lambda d: f"'{d.isoformat()}'")
    return (f"INSERT INTO {TOTALS} ({group}, ordered_day, reminded_day, n, amount) "  # noqa: S608
            f"SELECT {group}, {day(GROUP_DAY)}, {day(NO_DAY)}, SUM(n), SUM(amount) FROM {source} "
            f"WHERE ordered_day <> {day(GROUP_DAY)} {where} GROUP BY {group} "
            f"ON CONFLICT ({', '.join(KEY)}) DO UPDATE SET n = {TOTALS}.n + excluded.n, "
            f"amount = {TOTALS}.amount + excluded.amount")


# --- the fold --------------------------------------------------------------------------------------------


def fold(connection=None) -> int | None:
    """Move the deltas into OpenTotal, one row per key; the number of deltas folded, or None when
    another fold holds the lock (PostgreSQL: it does the same work). On PostgreSQL one statement
    deletes the deltas and adds what it deleted (one snapshot: a delta committed meanwhile stays for
    the next fold); SQLite has one writer at a time."""
    connection = connection or default_connection
    columns = ", ".join(KEY)
    upsert = (f"ON CONFLICT ({columns}) DO UPDATE SET n = {TOTALS}.n + excluded.n, "
              f"amount = {TOTALS}.amount + excluded.amount")
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_FOLD_LOCK])
            if not cursor.fetchone()[0]:
                return None
            group = ", ".join(GROUP)
            cursor.execute(
                f"WITH gone AS (DELETE FROM {DELTAS} RETURNING {columns}, n, amount), "  # noqa: S608
                f"summed AS (SELECT {columns}, SUM(n) AS n, SUM(amount) AS amount, COUNT(*) AS rows FROM gone "
                f"GROUP BY {columns}), "
                f"grouped AS (SELECT {group}, DATE '{GROUP_DAY.isoformat()}' AS ordered_day, "
                f"DATE '{NO_DAY.isoformat()}' AS reminded_day, SUM(n) AS n, SUM(amount) AS amount FROM gone "
                f"GROUP BY {group}), "
                f"merged AS (INSERT INTO {TOTALS} ({columns}, n, amount) SELECT {columns}, n, amount FROM summed "
                f"UNION ALL SELECT {columns}, n, amount FROM grouped ORDER BY {columns} {upsert}) "
                "SELECT COALESCE(SUM(rows), 0) FROM summed")
            folded = int(cursor.fetchone()[0])
        else:
            cursor.execute(f"SELECT COUNT(*), MAX(id) FROM {DELTAS}")  # noqa: S608
            folded, last = cursor.fetchone()
            if not folded:
                return 0
            cursor.execute(
                f"INSERT INTO {TOTALS} ({columns}, n, amount) SELECT {columns}, SUM(n), SUM(amount) "  # noqa: S608
                f"FROM {DELTAS} WHERE id <= %s GROUP BY {columns} {upsert}", [last])
            cursor.execute(_insert_groups("sqlite", DELTAS, "AND id <= %s"), [last])
            cursor.execute(f"DELETE FROM {DELTAS} WHERE id <= %s", [last])  # noqa: S608
        cursor.execute(f"DELETE FROM {TOTALS} WHERE n = 0")  # noqa: S608
    return folded
