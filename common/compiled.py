"""Fixed-shape ORM queries compiled once per database connection.

A query that every request of a page runs in the same shape (the active dunning configs, the base
rates) costs more to build and compile (Django's QuerySet -> Query -> SQLCompiler) than to run:
the active configs with their account and payment method took 1.5 ms of Python per request, of
which the database's part was a tenth (docs/performance-notes.md). `CompiledRows` builds the
queryset once per connection, keeps its compiled SQL, its parameters (constants of the query's
definition: never rows, never request data) and what turns its rows into values (Django's
converters) or model instances (Django's own `select_related` populators), and then only runs the
SQL. The result is what the queryset would give: the same SQL, the same converters.

Kept per connection object (a weak reference: a closed thread's connection takes its entry with
it), so the SQL always matches the connection's vendor and the converters are bound to that
connection, as Django's are. Only for querysets whose SQL does not depend on anything but the
code: no `now`, no ids, no user."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model, QuerySet
from django.db.models.query import get_related_populators


@dataclass(frozen=True)
class _Compiled:
    sql: str
    params: tuple
    compiler: Any  # the SQLCompiler: its converters apply to the rows as Django applies them
    converters: dict
    col_count: int


class CompiledRows:
    """`build()` (a queryset of fixed shape) compiled once per connection, run as plain SQL.

    `tuples()`: the rows as tuples (for a `values_list` queryset: what it would give).
    `instances()`: model instances with their `select_related` relations (for a model queryset:
    what iterating it would give, annotations and `only()` aside)."""

    def __init__(self, build: Callable[[], QuerySet]) -> None:
        self._build = build
        self._compiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def _compile(self, using: str) -> _Compiled:
        connection = connections[using]
        compiled = self._compiled.get(connection)
        if compiled is None:
            queryset = self._build()
            compiler = queryset.query.get_compiler(using=using)
            sql, params = compiler.as_sql()
            fields = [s[0] for s in compiler.select[: compiler.col_count]]
            compiled = _Compiled(sql=sql, params=tuple(params), compiler=compiler,
                                 converters=compiler.get_converters(fields), col_count=compiler.col_count)
            self._compiled[connection] = compiled
        return compiled

    def sql(self, using: str = DEFAULT_DB_ALIAS) -> tuple[str, tuple]:
        """The compiled SQL and its parameters."""
        compiled = self._compile(using)
        return compiled.sql, compiled.params

    def _rows(self, compiled: _Compiled, using: str) -> list[tuple]:
        with connections[using].cursor() as cursor:
            cursor.execute(compiled.sql, compiled.params)
            rows = cursor.fetchall()
        if compiled.converters:
            rows = [tuple(row) for row in compiled.compiler.apply_converters(rows, compiled.converters)]
        return rows

    def tuples(self, using: str = DEFAULT_DB_ALIAS) -> list[tuple]:
        compiled = self._compile(using)
        return self._rows(compiled, using)

    def instances(self, using: str = DEFAULT_DB_ALIAS) -> list[Model]:
        compiled = self._compile(using)
        compiler = compiled.compiler
        if compiler.annotation_col_map:
            raise ValueError("CompiledRows.instances() does not set annotations; use tuples()")
        klass_info, select = compiler.klass_info, compiler.select
        model_cls = klass_info["model"]
        start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
        init_list = [f[0].target.attname for f in select[start:end]]
        # Django's own populators of the select_related instances (they hold the column positions
        # and the setters, no rows): made per call, cheap next to compiling
        populators = get_related_populators(klass_info, select, using)
        objects = []
        for row in self._rows(compiled, using):
            obj = model_cls.from_db(using, init_list, row[start:end])
            for populator in populators:
                populator.populate(row, obj)
            objects.append(obj)
        return objects
