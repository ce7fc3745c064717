"""Writing rows in few statements: many at a time for jobs that settle a batch, one at a time in one."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import IntegrityError, connections, router, transaction
from django.db.models import Model

# Rows per statement: each row takes 2 parameters per field and 1 for its id, and SQLite allows 32,766
# parameters per statement (since 3.32); a billing batch's lot of answers is at most 100 rows.
ROWS_PER_STATEMENT = 500


def update_rows(objects: Sequence[Model], fields: Sequence[str]) -> None:
    """Write `fields` of each object to its row, in one UPDATE statement for up to ROWS_PER_STATEMENT
    rows: `SET field = CASE id WHEN ... THEN ... END` for each field.

    The statement Django's `bulk_update` writes, without its cost: it builds it from expressions whose
    Python takes about 2 ms a row (profiled: most of a billing batch's recording). One statement, not one
    per row (`executemany`): each statement hands the GIL to the job's threads (its calls in flight) and
    waits to get it back. As with `bulk_update`: no `save()`, no `auto_now`; set such fields first.
    """
    if not objects:
        return
    meta = type(objects[0])._meta
    connection = connections[router.db_for_write(type(objects[0]))]
    columns = [meta.get_field(name) for name in fields]
    quote = connection.ops.quote_name
    pk = quote(meta.pk.column)
    cast = connection.features.requires_casted_case_in_updates  # PostgreSQL: the CASE's type is the column's
    for start in range(0, len(objects), ROWS_PER_STATEMENT):
        chunk = objects[start : start + ROWS_PER_STATEMENT]
        ids = [meta.pk.get_db_prep_save(obj.pk, connection) for obj in chunk]
        assignments, params = [], []
        for field in columns:
            case = f"CASE {pk} {' '.join(['WHEN %s THEN %s'] * len(chunk))} END"
            if cast:
                case = f"CAST({case} AS {field.db_type(connection)})"
            assignments.append(f"{quote(field.column)} = {case}")
            for id_, obj in zip(ids, chunk, strict=True):
                params += [id_, field.get_db_prep_save(getattr(obj, field.attname), connection)]
        placeholders = ", ".join(["%s"] * len(ids))
        sql = f"UPDATE {quote(meta.db_table)} SET {', '.join(assignments)} WHERE {pk} IN ({placeholders})"
        with connection.cursor() as cursor:
            cursor.execute(sql, params + ids)


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
