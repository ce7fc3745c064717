"""Enqueue after commit.

A job sent inside a transaction can reach a worker before the transaction commits; the worker then
cannot see the row it was sent for (or acts on data that is later rolled back). Every enqueue in the
shop goes through here: the timeline row is written in the caller's transaction and the message is
sent only once that transaction has committed.

Celery 5.4's `delay_on_commit` does the second half (send on commit) but keeps no record: if the broker
is unreachable at that moment, the message is gone and nothing says so. Here the committed timeline row
is that record. A send that fails marks the row `unsent` and is not raised into the caller (the request
or job whose transaction already committed succeeded); the recovery sweep (`jobkit.recovery`) publishes
unsent rows once the broker is back. So a checkout answers 202 whenever its order is committed.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.db import transaction

from jobkit.models import JobRun
from jobkit.tasks import JobTask

logger = logging.getLogger(__name__)


def enqueue_on_commit(task: JobTask, *args: Any, countdown: float | None = None) -> str:
    """Record the job as queued now and send it when the surrounding transaction commits."""
    task_id = str(uuid.uuid4())
    JobRun.objects.create(
        task_id=task_id,
        name=task.name,
        queue=task.queue_name(),
        subject=task.subject_for(args),
        args=list(args),
    )
    transaction.on_commit(lambda: publish(task, args, task_id, countdown))
    return task_id


def publish(
    task: JobTask, args: tuple[Any, ...] | list[Any], task_id: str, countdown: float | None = None
) -> bool:
    """Send one recorded job's message; if the broker cannot take it, mark its row `unsent`."""
    try:
        task.apply_async(args=args, task_id=task_id, countdown=countdown)
    except Exception as exc:  # kombu raises its own OperationalError, redis its errors, OSError...
        logger.warning("job %s[%s] not sent, the recovery sweep will send it: %s", task.name, task_id, exc)
        JobRun.objects.filter(task_id=task_id, status=JobRun.Status.QUEUED).update(
            status=JobRun.Status.UNSENT, last_error=f"not sent: {type(exc).__name__}: {exc}"[:2000]
        )
        return False
    return True
