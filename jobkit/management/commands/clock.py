"""python manage.py clock [show | advance DURATION [--reason TEXT]]: the shop clock (jobkit/clock.py)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from jobkit import clock
from jobkit.models import ClockAdvance


class Command(BaseCommand):
    help = "Show the shop clock, or move it forward (e.g. `clock advance 1d`) where that is allowed."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("action", choices=["show", "advance"])
        parser.add_argument("duration", nargs="?", help="how far to advance: 90s, 15m, 1h, 1d, 2d12h")
        parser.add_argument("--reason", default="manage.py clock advance")

    def handle(self, *args: Any, action: str, duration: str | None, reason: str, **options: Any) -> None:
        if action == "advance":
            if not duration:
                raise CommandError("Say how far to advance, e.g. `clock advance 1d`.")
            try:
                clock.advance(clock.parse_duration(duration), reason)
            except (ValueError, clock.ClockLocked) as exc:
                raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"Shop clock: {clock.now():%Y-%m-%d %H:%M:%S %Z} (ahead of real time by {clock.offset()})"
        )
        for move in ClockAdvance.objects.all():
            self.stdout.write(f"  {move.at:%Y-%m-%d %H:%M:%S} +{move.seconds:g}s {move.reason}")
