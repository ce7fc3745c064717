"""The recovery sweep as a beat job (see jobkit.recovery)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import shared_task
from django.conf import settings

from jobkit import recovery
from jobkit.tasks import JobTask


@shared_task(base=JobTask, name="jobkit.recover_stuck_work", subject_kind="sweep", max_retries=0)
def recover_stuck_work() -> dict[str, Any] | None:
    return recovery.sweep_once_per_slot(
        timedelta(seconds=settings.SWEEP_STUCK_AFTER_SECONDS), settings.SWEEP_INTERVAL_SECONDS
    )
