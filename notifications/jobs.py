"""Notification jobs."""

from __future__ import annotations

from celery import shared_task

from jobkit.tasks import JobTask
from notifications import reminders


@shared_task(base=JobTask, name="notifications.send_due_reminders", subject_kind="reminders")
def send_due_reminders() -> int:
    return reminders.send_due()
