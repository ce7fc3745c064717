"""Enqueue after commit.

A job sent inside a transaction can reach a worker before the transaction commits; the worker then
cannot see the row it was sent for (or acts on data that is later rolled back). Every enqueue in the
shop goes through here: the timeline row is written in the caller's transaction and the message is
sent only once that transaction has committed.
"""

from __future__ import annotations

import uuid
from functools import partial
from typing import Any

from django.db import transaction

from jobkit.models import JobRun
from jobkit.tasks import ShopTask


def enqueue_on_commit(task: ShopTask, *args: Any, countdown: float | None = None) -> str:
    """Record the job as queued now and send it when the surrounding transaction commits."""
    task_id = str(uuid.uuid4())
    JobRun.objects.create(
        task_id=task_id,
        name=task.name,
        queue=task.queue_name(),
        subject=task.subject_for(args),
        args=list(args),
    )
    transaction.on_commit(partial(task.apply_async, args=args, task_id=task_id, countdown=countdown))
    return task_id
