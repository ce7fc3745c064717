"""Project-wide periodic jobs."""

from __future__ import annotations

from celery import shared_task

from jobkit import clock
from jobkit.tasks import JobTask
from shop import maintenance


@shared_task(base=JobTask, name="shop.daily_maintenance", subject_kind="maintenance")
def daily_maintenance() -> dict[str, int] | None:
    return maintenance.run_daily(clock.today())
