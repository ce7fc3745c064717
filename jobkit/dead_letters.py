"""Dead letters: a job that failed for good keeps its arguments and error; staff can send it again."""

from __future__ import annotations

from collections.abc import Iterable

from celery import current_app
from django.db import transaction

from jobkit.enqueue import enqueue_on_commit
from jobkit.models import JobRun


@transaction.atomic
def requeue(runs: Iterable[JobRun]) -> int:
    """Send each dead job again as a new job (new timeline row); the old row is marked requeued."""
    count = 0
    for run in runs:
        locked = JobRun.objects.select_for_update().get(pk=run.pk)
        if locked.status != JobRun.Status.DEAD:
            continue  # requeued by someone else meanwhile
        enqueue_on_commit(current_app.tasks[locked.name], *locked.args)
        locked.status = JobRun.Status.REQUEUED
        locked.save(update_fields=["status"])
        count += 1
    return count
