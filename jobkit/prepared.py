"""Hot queries built once: a prepared statement, on Django's side.

Django builds a query's SQL from its expressions on every call. For a statement that runs several times
per order that is most of what it costs: `orders.pipeline.complete_if_done`'s UPDATE with four EXISTS
took 4.4 ms of Python and 1 ms of the database, and a job's timeline UPDATE 0.6 ms of Python for 0.2 ms
of SQL (PostgreSQL, profiled in the pipeline benchmark). A prepared query builds its queryset once per
database with `Arg` placeholders where the values change, keeps the SQL, and on each call only adapts
its arguments, as the `Arg`'s field would adapt a value in a filter.

Use it for statements on the hot path whose shape never changes; write every other query as usual.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django.db import connections, router, transaction
from django.db.models import Expression, Field, Model, QuerySet
from django.db.models.sql import InsertQuery, UpdateQuery

T = TypeVar("T")


class Arg(Expression):
    """A value given when the prepared query runs, adapted for the database by `output_field`."""

    def __init__(self, name: str, output_field: Field) -> None:
        super().__init__(output_field=output_field)
        self.name = name

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        return "%s", [self]  # the Arg stands in its parameter's place until a call binds it

    def __repr__(self) -> str:
        return f"Arg({self.name!r})"


class _Prepared:
    """Built on first use (not at import: building a query needs the apps loaded), compiled once per
    database (alias and vendor: a test may point an alias elsewhere)."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._template: Any = None
        self._compiled: dict[tuple[str, str], tuple[str, list[Any]]] = {}

    def _compile(self, template: Any, using: str) -> tuple[str, list[Any]]:
        raise NotImplementedError

    def template(self) -> Any:
        """What the statement is built from: a queryset, or an unsaved instance for an INSERT."""
        if self._template is None:
            self._template = self._build()
        return self._template

    def _execute(self, using: str, args: dict[str, Any], read: Callable[[Any], T]) -> T:
        connection = connections[using]
        key = (using, connection.vendor)
        if key not in self._compiled:
            self._compiled[key] = self._compile(self.template(), using)
        sql, template = self._compiled[key]
        params = [
            p.output_field.get_db_prep_value(args[p.name], connection) if isinstance(p, Arg) else p
            for p in template
        ]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return read(cursor)


class PreparedUpdate(_Prepared):
    """`queryset.update(**values)`, built once: `PreparedUpdate(lambda: queryset, field=value, ...)` with
    `Arg`s among the filters and values, then `prepared(name=value, ...)` returns the number of rows
    updated. As `QuerySet.update`: no `save()`, no `auto_now`; set such fields among the values."""

    def __init__(self, queryset: Callable[[], QuerySet[Any]], **values: Any) -> None:
        super().__init__(queryset)
        self._values = values

    def _compile(self, queryset: QuerySet[Any], using: str) -> tuple[str, list[Any]]:
        query = queryset.query.chain(UpdateQuery)
        query.add_update_values(self._values)
        query.annotations = {}
        sql, params = query.get_compiler(using).as_sql()
        return sql, list(params)

    def __call__(self, **args: Any) -> int:
        using = router.db_for_write(self.template().model)
        with transaction.mark_for_rollback_on_error(using):
            return self._execute(using, args, lambda cursor: cursor.rowcount)


class PreparedSelect(_Prepared):
    """A queryset's rows, built once: `PreparedSelect(lambda: queryset.values_list(...))` with `Arg`s
    among the filters, then `prepared(name=value, ...)` returns its rows as tuples."""

    def _compile(self, queryset: QuerySet[Any], using: str) -> tuple[str, list[Any]]:
        sql, params = queryset.query.get_compiler(using).as_sql()
        return sql, list(params)

    def __call__(self, **args: Any) -> Sequence[tuple[Any, ...]]:
        using = router.db_for_read(self.template().model)
        return self._execute(using, args, lambda cursor: cursor.fetchall())


class PreparedInsert(_Prepared):
    """One row's INSERT, built once: `PreparedInsert(lambda: Model(field=Arg(...), ...))`, an unsaved
    instance with `Arg`s where the values change, then `prepared(name=value, ...)` inserts a row. Every
    other field is written with the instance's value (its default, taken once). As `bulk_create`: no
    `save()`, no signals, no `auto_now`, and the new row's id is not read back."""

    def _compile(self, template: Model, using: str) -> tuple[str, list[Any]]:
        fields = [field for field in template._meta.local_concrete_fields if not field.primary_key]
        query = InsertQuery(type(template))
        query.insert_values(fields, [template], raw=True)  # raw: the instance's values, no pre_save
        [(sql, params)] = query.get_compiler(using).as_sql()
        return sql, list(params)

    def __call__(self, **args: Any) -> None:
        using = router.db_for_write(type(self.template()))
        with transaction.mark_for_rollback_on_error(using):
            self._execute(using, args, lambda cursor: None)
