"""Writing rows in few statements: many at a time for jobs that settle a batch, one at a time in one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model
from django.db.models.options import Options

# Rows per statement: each row takes 2 parameters per field and 1 for its id, and SQLite allows 32,766
# parameters per statement (since 3.32); a billing batch's lot of answers is at most 100 rows.
ROWS_PER_STATEMENT = 500


def update_rows(objects: Sequence[Model], fields: Sequence[str]) -> None:
    """Write `fields` of each object to its row, in one UPDATE statement for up to ROWS_PER_STATEMENT
    rows.

    The statement Django's `bulk_update` writes, without its cost: it builds it from expressions whose
    Python takes about 2 ms a row (profiled: most of a billing batch's recording). One statement, not one
    per row (`executemany`): each statement hands the GIL to the job's threads (its calls in flight) and
    waits to get it back. As with `bulk_update`: no `save()`, no `auto_now`; set such fields first.

    On PostgreSQL the rows' values go in as one array per column (`UNNEST`), so the statement is short
    and the same for every lot: psycopg converts a statement's placeholders in Python, and caches that
    only for short statements (a lot of 100 rows written as `CASE id WHEN ... THEN ...` took 8% of a
    billing worker's CPU in that conversion). Elsewhere: `SET field = CASE id WHEN ... THEN ... END`.
    """
    if not objects:
        return
    meta = type(objects[0])._meta
    connection = connections[router.db_for_write(type(objects[0]))]
    columns = [meta.get_field(name) for name in fields]
    table = _Table(connection, meta, columns)
    write = _unnest_update if connection.vendor == "postgresql" else _case_update
    with connection.cursor() as cursor:
        for start in range(0, len(objects), ROWS_PER_STATEMENT):
            chunk = objects[start : start + ROWS_PER_STATEMENT]
            ids = [meta.pk.get_db_prep_save(obj.pk, connection) for obj in chunk]
            values = [[field.get_db_prep_save(getattr(obj, field.attname), connection) for obj in chunk]
                      for field in columns]  # fmt: skip
            cursor.execute(*write(table, ids, values))


@dataclass
class _Table:
    """The columns to write, quoted for their database."""

    connection: BaseDatabaseWrapper
    meta: Options
    columns: list[Field]

    def quoted(self, name: str) -> str:
        return self.connection.ops.quote_name(name)


def _unnest_update(table: _Table, ids: list[Any], values: list[list[Any]]) -> tuple[str, list[Any]]:
    name, pk = table.quoted(table.meta.db_table), table.quoted(table.meta.pk.column)
    columns = [table.quoted(field.column) for field in table.columns]
    types = [field.db_type(table.connection) for field in [table.meta.pk, *table.columns]]
    sql = (
        f"UPDATE {name} SET {', '.join(f'{column} = given.{column}' for column in columns)} "
        f"FROM UNNEST({', '.join(f'%s::{type_}[]' for type_ in types)}) AS given({pk}, {', '.join(columns)}) "
        f"WHERE {name}.{pk} = given.{pk}"
    )
    return sql, [ids, *values]


def _case_update(table: _Table, ids: list[Any], values: list[list[Any]]) -> tuple[str, list[Any]]:
    pk = table.quoted(table.meta.pk.column)
    case = f"CASE {pk} {' '.join(['WHEN %s THEN %s'] * len(ids))} END"
    assignments = ", ".join(f"{table.quoted(field.column)} = {case}" for field in table.columns)
    params = [param for column in values for pair in zip(ids, column, strict=True) for param in pair]
    placeholders = ", ".join(["%s"] * len(ids))
    sql = f"UPDATE {table.quoted(table.meta.db_table)} SET {assignments} WHERE {pk} IN ({placeholders})"
    return sql, params + ids


def insert_unless_taken(row: Model) -> bool:
    """INSERT `row`; False, having written nothing, when a unique key it holds is taken already (a
    duplicate job's row, or an earlier run's). One statement in autocommit, where a refused INSERT
    harms nothing; inside a transaction, a savepoint around it keeps the transaction going. Where
    `get_or_create` takes four statements (a savepoint, and a read first)."""
    using = router.db_for_write(type(row))
    try:
        if connections[using].in_atomic_block:
            with transaction.atomic(using=using):
                row.save(force_insert=True, using=using)
        else:
            row.save(force_insert=True, using=using)
    except IntegrityError:
        return False
    return True
