"""python manage.py recover [--older-than SECONDS]: run the recovery sweep now (see jobkit.recovery)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from jobkit import recovery


class Command(BaseCommand):
    help = "Send unsent job messages, and re-enqueue the next job of every subject stuck with no live job."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--older-than",
            type=int,
            default=settings.SWEEP_STUCK_AFTER_SECONDS,
            help="seconds a subject must have stayed unchanged (default: SWEEP_STUCK_AFTER_SECONDS)",
        )

    def handle(self, *args: Any, older_than: int, **options: Any) -> None:
        if older_than < 0:
            raise CommandError("--older-than must be zero or more seconds.")
        report = recovery.sweep(timedelta(seconds=older_than))
        self.stdout.write(f"Published {len(report.published)} unsent job message(s).")
        for name, subjects in report.requeued.items():
            self.stdout.write(f"Re-enqueued {len(subjects)} stuck {name} subject(s).")
            for subject in subjects:
                self.stdout.write(f"  {subject}")
        self.stdout.write(f"Sent {len(report.resent)} lost job message(s) again.")
        if report.waiting_for_human:
            self.stdout.write(f"Left {len(report.waiting_for_human)} subject(s) whose latest job is dead:")
            for subject in report.waiting_for_human:
                self.stdout.write(f"  {subject}")
