"""python manage.py bill_due [--date YYYY-MM-DD]: bill every subscription due on that date (default today)."""

from __future__ import annotations

import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from jobkit import clock
from subscriptions import renewals


def billing_date(value: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"--date must be a date as YYYY-MM-DD, not {value!r}.") from exc


class Command(BaseCommand):
    help = "Start (or join) the billing run for a date; its batches are billed by the workers."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--date", help="billing date, YYYY-MM-DD (default: today)")

    def handle(self, *args: Any, date: str | None, **options: Any) -> None:
        day = billing_date(date) if date else clock.today()
        run, created = renewals.start_run(day)
        verb = "Started" if created else "Joined the existing"
        self.stdout.write(
            f"{verb} billing run {run.pk} for {day}: {run.status}, {run.batches_total} batch(es) so far."
        )
