"""Celery beat entries: periodic jobs the shop runs.

Every entry must be safe to run twice (two beat processes, a manual re-run): the job it triggers
guards itself in the database, never by trusting that beat fires exactly once. Settings build the
schedule (CELERY_BEAT_SCHEDULE) from their intervals, so nothing here reads settings at import time.
"""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab


def beat_schedule(*, sweep_interval: float, reminder_interval: float) -> dict[str, dict[str, Any]]:
    return {
        # The database is the source of truth: send unsent messages, move on work whose messages were lost.
        "recover-stuck-work": {
            "task": "jobkit.recover_stuck_work",
            "schedule": sweep_interval,
        },
        # Reminders are rows with a due time; this claims the due ones (SKIP LOCKED: two beats are harmless).
        "send-due-reminders": {
            "task": "notifications.send_due_reminders",
            "schedule": reminder_interval,
        },
        # Daily pruning, guarded by a unique key per day: a second beat or a re-run does nothing.
        "daily-maintenance": {
            "task": "shop.daily_maintenance",
            "schedule": crontab(hour=3, minute=30),
        },
        # Daily batch billing; one BillingRun per date, so a second beat joins the same run.
        "bill-due-subscriptions": {
            "task": "subscriptions.start_billing_run",
            "schedule": crontab(hour=2, minute=0),
        },
    }
