"""Writing many rows in few statements, for jobs that settle a batch at a time."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connections, router
from django.db.models import Model


def update_rows(objects: Sequence[Model], fields: Sequence[str]) -> None:
    """Write `fields` of each object to its row: one UPDATE statement, run for every row at once (the
    DB-API's executemany). Django's `bulk_update` builds a CASE over every row for each field instead,
    whose Python costs about 2 ms a row (profiled: most of a billing batch's recording). As with
    `bulk_update`, no `save()` and no `auto_now`: set such fields on the objects first."""
    if not objects:
        return
    model = type(objects[0])
    meta = model._meta
    connection = connections[router.db_for_write(model)]
    columns = [meta.get_field(name) for name in fields]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in columns)
    sql = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s"
    rows = [
        [field.get_db_prep_save(getattr(obj, field.attname), connection) for field in columns]
        + [meta.pk.get_db_prep_save(obj.pk, connection)]
        for obj in objects
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)
