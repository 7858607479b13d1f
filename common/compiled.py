"""Fixed-shape ORM queries compiled once per database connection.

A query that every request of a page runs in the same shape (the active dunning configs, the base
rates, the overview's rows) costs more to build and compile (Django's QuerySet -> Query ->
SQLCompiler) than to run: the active configs with their account and payment method took 1.5 ms of
Python per request, of which the database's part was a tenth (docs/performance-notes.md).
`CompiledRows` builds the queryset once per connection, keeps its compiled SQL, the shape of its
parameters and what turns its rows into values (Django's converters) or model instances (Django's
own `select_related` populators), and then only runs the SQL. The result is what the queryset
would give: the same SQL, the same converters. Never rows: nothing of the data is kept.

Parameters that change per call (an order's ids, an instant) are declared as markers: `build` is
called once with them, each marker must come out of the compiler as exactly one query parameter,
unchanged (a list marker: each of its items), and each call puts its values in their places. A
list is padded to the marker's length by repeating its first item (an `IN` list: the same rows).
When a marker does not come out so (a backend that converts the value, SQLite's datetimes) or a
call's list is longer than its marker, the queryset is built and run as usual: slower, never
different.

Kept per connection object (a weak reference: a closed thread's connection takes its entry with
it), so the SQL always matches the connection's vendor and the converters are bound to that
connection, as Django's are."""

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
    slots: tuple[tuple[int, str, int | None], ...]  # (parameter position, marker name, item or None)
    compiler: Any  # the SQLCompiler: its converters apply to the rows as Django applies them
    converters: dict


_NOT_COMPILABLE = object()


class CompiledRows:
    """`build(**markers)` (a queryset of fixed shape) compiled once per connection, run as SQL.

    `tuples(**values)`: the rows as tuples (for a `values_list` queryset: what it would give).
    `instances(**values)`: model instances with their `select_related` relations and annotations
    (for a model queryset: what iterating it would give)."""

    def __init__(self, build: Callable[..., QuerySet], **markers: Any) -> None:
        self._build = build
        self._markers = markers
        self._compiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def _compile(self, using: str) -> _Compiled | None:
        connection = connections[using]
        compiled = self._compiled.get(connection)
        if compiled is None:
            compiler = self._build(**self._markers).query.get_compiler(using=using)
            sql, params = compiler.as_sql()
            slots = self._slots(params)
            if slots is None:
                compiled = _NOT_COMPILABLE
            else:
                fields = [s[0] for s in compiler.select[: compiler.col_count]]
                compiled = _Compiled(sql=sql, params=tuple(params), slots=slots, compiler=compiler,
                                     converters=compiler.get_converters(fields))
            self._compiled[connection] = compiled
        return None if compiled is _NOT_COMPILABLE else compiled

    def _slots(self, params) -> tuple[tuple[int, str, int | None], ...] | None:
        """Where each marker is among the compiled parameters; None unless each is exactly once."""
        wanted = [(name, None, marker) for name, marker in self._markers.items() if not isinstance(marker, list)]
        wanted += [(name, i, item) for name, marker in self._markers.items() if isinstance(marker, list)
                   for i, item in enumerate(marker)]
        slots = []
        for name, index, marker in wanted:
            found = [pos for pos, param in enumerate(params) if type(param) is type(marker) and param == marker]
            if len(found) != 1:
                return None
            slots.append((found[0], name, index))
        return tuple(slots)

    def _params(self, compiled: _Compiled, values: dict[str, Any]) -> list | None:
        if values.keys() != self._markers.keys():
            raise TypeError(f"CompiledRows takes the values of {sorted(self._markers)}, got {sorted(values)}")
        padded = {}
        for name, value in values.items():
            if isinstance(self._markers[name], list):
                value = list(value)
                if not value or len(value) > len(self._markers[name]):
                    return None
                value += [value[0]] * (len(self._markers[name]) - len(value))
            padded[name] = value
        params = list(compiled.params)
        for pos, name, index in compiled.slots:
            params[pos] = padded[name] if index is None else padded[name][index]
        return params

    def sql(self, using: str = DEFAULT_DB_ALIAS) -> tuple[str, tuple] | None:
        """The compiled SQL and its parameters as compiled (with the markers); None when the
        queryset is built and run per call."""
        compiled = self._compile(using)
        return None if compiled is None else (compiled.sql, compiled.params)

    def _rows(self, compiled: _Compiled, params: list) -> list[tuple]:
        with compiled.compiler.connection.cursor() as cursor:
            cursor.execute(compiled.sql, params)
            rows = cursor.fetchall()
        if compiled.converters:
            rows = [tuple(row) for row in compiled.compiler.apply_converters(rows, compiled.converters)]
        return rows

    def _prepared(self, using: str, values: dict[str, Any]) -> tuple[_Compiled, list] | None:
        compiled = self._compile(using)
        if compiled is None:
            return None
        params = self._params(compiled, values)
        return None if params is None else (compiled, params)

    def tuples(self, using: str = DEFAULT_DB_ALIAS, **values: Any) -> list[tuple]:
        prepared = self._prepared(using, values)
        if prepared is None:
            return [tuple(row) for row in self._build(**values).using(using)]
        return self._rows(*prepared)

    def instances(self, using: str = DEFAULT_DB_ALIAS, **values: Any) -> list[Model]:
        prepared = self._prepared(using, values)
        if prepared is None:
            return list(self._build(**values).using(using))
        compiled, params = prepared
        compiler = compiled.compiler
        klass_info, select, annotations = compiler.klass_info, compiler.select, compiler.annotation_col_map
        model_cls = klass_info["model"]
        start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
        init_list = [f[0].target.attname for f in select[start:end]]
        # Django's own populators of the select_related instances (they hold the column positions
        # and the setters, no rows), as ModelIterable uses them
        populators = get_related_populators(klass_info, select, using)
        objects = []
        for row in self._rows(compiled, params):
            obj = model_cls.from_db(using, init_list, row[start:end])
            for populator in populators:
                populator.populate(row, obj)
            for name, pos in (annotations or {}).items():
                setattr(obj, name, row[pos])
            objects.append(obj)
        return objects
