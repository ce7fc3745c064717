"""The relay: a transactionally staged job drain for the web server.

Sending a job's message costs a checkout as much as all its own inserts (`make bench`, checkout). So the
web does not send: its transaction stages the job's timeline row as `unsent` (jobkit/enqueue.py), and
this process, running beside the web server (started by `gunicorn.conf.py`), sends the messages of
staged rows within 50 ms of their commit. A row is visible here only once its transaction has
committed, so no job ever reaches a worker before its data.

The relay claims a batch of rows (`unsent` -> `queued`) in one statement, then sends each message: on
PostgreSQL a row another relay or the sweep is claiming is skipped, on SQLite the write lock serializes
the claims. A relay killed between the claim and a send leaves `queued` rows whose messages the broker
never got: the recovery sweep sends those as lost messages. A send the broker refuses puts its row and
the rest of the batch back to `unsent`, and the relay backs off; the recovery sweep drains the same rows
the same way, so a stopped relay delays jobs by one sweep interval, and loses none.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import current_app
from django.db import connection

from jobkit.enqueue import publish
from jobkit.models import JobRun
from jobkit.prepared import PreparedSelect

logger = logging.getLogger(__name__)

# Rows claimed at a time: one checkout each. A batch is sent in a few tens of milliseconds, and a
# relay killed mid-batch leaves at most this many messages to the recovery sweep.
BATCH_SIZE = 100
# How often an idle relay looks for staged rows: the delay it adds to a job, 25 ms on average, for one
# indexed query every 50 ms (an idle relay takes 2% of a core; the claim's transaction at 20 ms took 5%,
# and with it the pipeline benchmark's throughput on two cores).
POLL_SECONDS = 0.05
# The idle poll, built by Django once (`jobkit/prepared.py`): 0.13 ms of CPU instead of 0.42 ms.
_any_unsent = PreparedSelect(lambda: JobRun.objects.filter(status=JobRun.Status.UNSENT).values_list("pk")[:1])
# After the broker refused a message: wait this long, doubling up to the cap, before trying again.
BACKOFF_SECONDS = (0.5, 15.0)


def drain(limit: int = BATCH_SIZE) -> tuple[list[str], bool]:
    """Send the messages of up to `limit` staged rows, oldest first. Returns the task ids sent, and
    False if the broker refused one (the rest of the batch then waits, staged, for the next drain)."""
    if not _any_unsent():  # the idle relay's one query: no transaction to open and close
        return [], True
    batch = _claim(limit)
    sent: list[str] = []
    for position, (_, task_id, name, args) in enumerate(batch):
        if not publish(current_app.tasks[name], args, task_id):  # marked unsent again
            left = [later[0] for later in batch[position + 1 :]]
            JobRun.objects.filter(pk__in=left, status=JobRun.Status.QUEUED).update(
                status=JobRun.Status.UNSENT
            )
            return sent, False
        sent.append(task_id)
    return sent, True


def _claim(limit: int) -> list[tuple[int, str, str, list[Any]]]:
    """Up to `limit` staged rows, oldest first, moved from `unsent` to `queued`: (id, task id, name, args).

    One UPDATE ... RETURNING in autocommit (SQLite 3.35 or later, which `make` checks), not a transaction
    of a locking read, an UPDATE and a COMMIT: on SQLite a claim holds the write lock every checkout's
    transaction waits for, and a claim of 15 rows (a sequential client's 50 ms of checkouts) held it
    0.19 ms instead of 0.85 ms; on PostgreSQL it took 0.83 ms instead of 2.7-5.7 ms (timed alone, 300
    claims each). On PostgreSQL the claim skips rows another claim has locked."""
    quote, meta = connection.ops.quote_name, JobRun._meta
    table = quote(meta.db_table)
    pk, status, task_id, name, args = (
        quote(meta.get_field(field).column) for field in ("id", "status", "task_id", "name", "args")
    )
    skip_locked = " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    # The rows are chosen once, in a materialized CTE: as `IN (subquery)`, PostgreSQL may run the subquery
    # again for each row it updates, which then finds the next rows (those claimed are `queued` by then).
    sql = (
        f"WITH claimed AS MATERIALIZED "
        f"(SELECT {pk} FROM {table} WHERE {status} = %s ORDER BY {pk} LIMIT %s{skip_locked}) "
        f"UPDATE {table} SET {status} = %s WHERE {pk} IN (SELECT {pk} FROM claimed) "
        f"RETURNING {pk}, {task_id}, {name}, {args}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [JobRun.Status.UNSENT, limit, JobRun.Status.QUEUED])
        rows = cursor.fetchall()
    args_field = meta.get_field("args")
    claimed = [
        (row_id, row_task_id, row_name, args_field.from_db_value(raw_args, None, connection))
        for row_id, row_task_id, row_name, raw_args in rows
    ]
    return sorted(claimed)  # RETURNING keeps no order


def run(stop: threading.Event, poll_seconds: float = POLL_SECONDS) -> None:
    """Drain staged rows until `stop` is set: at once while there are more, every `poll_seconds` when
    there are none, with a growing pause while the broker refuses messages."""
    backoff = BACKOFF_SECONDS[0]
    while not stop.is_set():
        try:
            sent, broker_took_all = drain()
        except Exception:  # the database is down or locked: the same pause as a refusing broker
            logger.exception("relay: could not read staged jobs")
            connection.close()  # the next drain starts on a new connection
            sent, broker_took_all = [], False
        if not broker_took_all:
            stop.wait(backoff)
            backoff = min(backoff * 2, BACKOFF_SECONDS[1])
            continue
        backoff = BACKOFF_SECONDS[0]
        if len(sent) < BATCH_SIZE:
            stop.wait(poll_seconds)
