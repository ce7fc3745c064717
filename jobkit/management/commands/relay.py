"""python manage.py relay: send the messages of jobs the web server staged (see jobkit.relay).

`gunicorn.conf.py` starts it beside the web server; run it yourself beside any other server that calls
`jobkit.enqueue.stage_for_relay()`.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from jobkit import relay


class Command(BaseCommand):
    help = "Send the messages of staged jobs (timeline rows `unsent`) until stopped (SIGTERM, SIGINT)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--poll-seconds",
            type=float,
            default=relay.POLL_SECONDS,
            help=f"how often to look for staged jobs when there are none (default: {relay.POLL_SECONDS})",
        )

    def handle(self, *args: Any, poll_seconds: float, **options: Any) -> None:
        if not 0 < poll_seconds <= 60:
            raise CommandError("--poll-seconds must be more than 0 and at most 60.")
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        self.stdout.write(f"relay: sending staged jobs, looking every {poll_seconds:g} s", ending="\n")
        self.stdout.flush()
        relay.run(stop, poll_seconds)
