"""Daily maintenance: prune what has outlived its use. Runs once per day, however it is started.

The guard is a unique key claimed in the same transaction as the deletions (jobkit.unique.claim_once):
two beat processes, a manual re-run or a redelivered message find the day's key taken and do nothing.
"""

from __future__ import annotations

import datetime
from datetime import timedelta

from django.conf import settings
from django.contrib.sessions.models import Session
from django.db import transaction

from apikit.models import IdempotencyRecord
from jobkit import clock
from jobkit.models import JobExecution, JobRun
from jobkit.unique import claim_once


@transaction.atomic
def run_daily(day: datetime.date) -> dict[str, int] | None:
    """Prune for `day`; None if that day's maintenance already ran."""
    claim = claim_once(f"maintenance:{day.isoformat()}")
    if claim is None:
        return None
    now = clock.now()
    finished = (JobRun.Status.SUCCEEDED, JobRun.Status.REQUEUED)
    pruned = {
        "job_runs": JobRun.objects.filter(
            status__in=finished, updated_at__lt=now - timedelta(days=settings.JOB_TIMELINE_RETENTION_DAYS)
        ).delete()[0],
        "expired_carts": Session.objects.filter(expire_date__lt=now).delete()[0],
        "idempotency_records": IdempotencyRecord.objects.filter(
            created_at__lt=now - timedelta(hours=settings.IDEMPOTENCY_RETENTION_HOURS)
        ).delete()[0],
        "unique_keys": JobExecution.objects.filter(
            created_at__lt=now - timedelta(days=settings.JOB_TIMELINE_RETENTION_DAYS)
        ).delete()[0],
    }
    claim.result = pruned
    claim.save(update_fields=["result"])
    return pruned
