"""The relay: a transactionally staged job drain for the web server.

Sending a job's message costs a checkout as much as all its own inserts (`make bench`, checkout). So the
web does not send: its transaction stages the job's timeline row as `unsent` (jobkit/enqueue.py), and
this process, running beside the web server (started by `gunicorn.conf.py`), sends the messages of
staged rows within 50 ms of their commit. A row is visible here only once its transaction has
committed, so no job ever reaches a worker before its data.

The relay claims a batch of rows (`unsent` -> `queued`, rows locked and skipped by any other relay or
sweep on PostgreSQL; on SQLite the write lock serializes them), commits, then sends each message. A
relay killed between the claim and a send leaves `queued` rows whose messages the broker never got: the
recovery sweep sends those as lost messages. A send the broker refuses puts its row and the rest of the
batch back to `unsent`, and the relay backs off; the recovery sweep drains the same rows the same way,
so a stopped relay delays jobs by one sweep interval, and loses none.
"""

from __future__ import annotations

import logging
import threading

from celery import current_app
from django.db import connection, transaction

from jobkit.enqueue import publish
from jobkit.models import JobRun
from jobkit.prepared import PreparedSelect

logger = logging.getLogger(__name__)

# Rows claimed per transaction: one checkout each. A batch is sent in a few tens of milliseconds, and a
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
    unsent = JobRun.objects.filter(status=JobRun.Status.UNSENT)
    with transaction.atomic():
        staged = unsent.select_for_update(skip_locked=True)
        batch = list(staged.order_by("id").only("id", "task_id", "name", "args")[:limit])
        JobRun.objects.filter(pk__in=[run.pk for run in batch]).update(status=JobRun.Status.QUEUED)
    sent: list[str] = []
    for position, run in enumerate(batch):
        if not publish(current_app.tasks[run.name], run.args, run.task_id):  # marked unsent again
            left = [later.pk for later in batch[position + 1 :]]
            JobRun.objects.filter(pk__in=left, status=JobRun.Status.QUEUED).update(
                status=JobRun.Status.UNSENT
            )
            return sent, False
        sent.append(run.task_id)
    return sent, True


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
