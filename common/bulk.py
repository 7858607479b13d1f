"""Inserting many rows at once: `COPY ... FROM STDIN` on PostgreSQL, `bulk_create` elsewhere.

Measured on the bank import (100,000 payments and 175,000 audit rows, docs/benchmarks-payments.md):
Django 5.2's `bulk_create` on PostgreSQL binds each column as an array (`INSERT ... SELECT * FROM
UNNEST(...)`), which psycopg's client-side binding escapes value by value in Python, after Django
prepared every value of every field; that was most of the import's time. COPY sends the rows in
psycopg's binary-accelerated text format instead. Its ids come first from the table's sequence
(one query), so the instances carry their pk afterwards as with `bulk_create`.

The COPY goes through the connection's execute wrappers (`connection.execute_wrapper`), so query
counting (tests, benchmarks) sees it as the one statement it is."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from django.db import connection, models

COPY_MIN_ROWS = 50  # below this a plain INSERT is as cheap and simpler to read in a query log


@contextlib.contextmanager
def pipelined() -> Iterator[None]:
    """PostgreSQL: the statements inside go to the server one after another without waiting for
    each one's answer (psycopg's pipeline mode); the first read of a result (a fetch, a rowcount)
    or the end of the block waits for all of them at once. A transaction of five short statements
    then costs one or two round trips instead of five: each round trip is a wait for the database
    and, in a process whose other threads keep the interpreter busy, a wait for the interpreter lock
    again (the sender's write-back, docs/benchmarks-sending.md). An error of any statement is raised
    at that read or at the block's end, inside the caller's transaction. A statement's rowcount is
    not known inside the block (-1, also what `QuerySet.update()` returns there): read what you
    need with RETURNING. Elsewhere: nothing."""
    if connection.vendor != "postgresql":
        yield
        return
    connection.ensure_connection()
    with connection.wrap_database_errors, connection.connection.pipeline():
        yield


def _in_pipeline() -> bool:
    """COPY cannot run in pipeline mode: inserts then go as plain INSERTs."""
    from psycopg import pq

    return connection.connection.pgconn.pipeline_status != pq.PipelineStatus.OFF


def insert_rows(model: type[models.Model], rows: Sequence[models.Model], *, pks: bool = True) -> None:
    """INSERT `rows` (unsaved instances of `model` with an auto pk); with `pks` their pks are set
    (PostgreSQL: one query more, for the sequence's values)."""
    if not rows:
        return
    if connection.vendor != "postgresql" or len(rows) < COPY_MIN_ROWS or _in_pipeline():
        model.objects.bulk_create(rows)
        return
    meta = model._meta
    fields = list(meta.concrete_fields)
    if pks:
        with connection.cursor() as cursor:
            cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                           [meta.db_table, meta.pk.column, len(rows)])
            for row, (pk,) in zip(rows, cursor.fetchall(), strict=True):
                row.pk = pk
    else:
        fields.remove(meta.pk)
    _copy(model, fields, ([getattr(row, f.attname) for f in fields] for row in rows), len(rows))
    for row in rows:
        row._state.adding = False
        row._state.db = connection.alias


def insert_values(model: type[models.Model], attnames: Sequence[str], values: Sequence[Sequence[Any]]) -> None:
    """INSERT one row of `model` per tuple of `values` (in the order of `attnames`, e.g. "order_id"),
    without building model instances (they cost more than the COPY at 100,000 rows). The fields'
    defaults are not applied: name every column that needs a value."""
    if not values:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_create([model(**dict(zip(attnames, v, strict=True))) for v in values])
        return
    by_attname = {f.attname: f for f in model._meta.concrete_fields}
    fields = [by_attname[a] for a in attnames]
    if len(values) < COPY_MIN_ROWS or _in_pipeline():
        _insert(model, fields, values)
        return
    _copy(model, fields, (list(v) for v in values), len(values))


def _target(model: type[models.Model], fields: list[models.Field]) -> tuple[str, str, list[int]]:
    """The quoted table, its quoted column list for `fields`, and the positions of the JSON fields
    (their values go as Jsonb)."""
    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    return table, columns, [i for i, f in enumerate(fields) if isinstance(f, models.JSONField)]


def _insert(model: type[models.Model], fields: list[models.Field], values: Sequence[Sequence[Any]]) -> None:
    """A few rows: one plain multi-row INSERT (the ORM's bulk_create of model instances cost several
    times the statement for the sender's sets of a few audit rows, docs/benchmarks-sending.md)."""
    from psycopg.types.json import Jsonb

    table, columns, json = _target(model, fields)
    placeholders = "(" + ", ".join(["%s"] * len(fields)) + ")"
    params = [Jsonb(v) if i in json and v is not None else v for row in values for i, v in enumerate(row)]
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {table} ({columns}) VALUES "  # noqa: S608 - names from the model
                       + ", ".join([placeholders] * len(values)), params)


def _copy(model: type[models.Model], fields: list[models.Field], rows: Iterable[list[Any]], n: int) -> None:
    from psycopg.types.json import Jsonb

    table, columns, json = _target(model, fields)
    sql = f"COPY {table} ({columns}) FROM STDIN"
    with connection.cursor() as cursor:

        def copy(_sql, _params, _many, _context):
            with cursor.cursor.copy(sql) as out:
                for values in rows:
                    for i in json:
                        if values[i] is not None:
                            values[i] = Jsonb(values[i])
                    out.write_row(values)

        run = copy
        for wrapper in reversed(connection.execute_wrappers):
            run = functools.partial(wrapper, run)
        started = time.monotonic()
        with connection.wrap_database_errors:  # psycopg's errors as Django's (IntegrityError, ...)
            run(sql, None, False, {"connection": connection, "cursor": cursor})
        if connection.queries_logged:  # what CursorDebugWrapper logs for a statement (assertNumQueries)
            connection.queries_log.append({"sql": f"{sql} -- {n} rows", "time": f"{time.monotonic() - started:.3f}"})
