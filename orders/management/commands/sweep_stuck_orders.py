"""python manage.py sweep_stuck_orders [--older-than SECONDS]: move on orders whose job messages were lost."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from orders import services


class Command(BaseCommand):
    help = "Re-enqueue the next step of orders that have waited with no live job (after a broker loss)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--older-than",
            type=int,
            default=settings.SWEEP_STUCK_AFTER_SECONDS,
            help="seconds without a sign of life (default: SWEEP_STUCK_AFTER_SECONDS)",
        )

    def handle(self, *args: Any, older_than: int, **options: Any) -> None:
        if older_than < 0:
            raise CommandError("--older-than must be zero or more seconds.")
        swept = services.sweep_stuck_orders(timedelta(seconds=older_than))
        self.stdout.write(f"Re-enqueued {len(swept)} order(s).")
        for order_id in swept:
            self.stdout.write(f"  {order_id}")
