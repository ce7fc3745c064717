"""The shop clock: one clock for every due-time decision, which demos and tests can move forward.

Reminders come due at +24/48/72 h and subscriptions renew monthly: too slow to watch. Like Stripe's test
clocks, the shop reads "now" from here for those decisions (reminders due, billing dates and periods,
retention, the recovery sweep's "stuck since"): real time plus the sum of recorded advances. Staff move it
forward from `/ops/` or `python manage.py clock advance 1d`; every advance is a row (`ClockAdvance`), the
clock never moves back, and where `CLOCK_CAN_ADVANCE` is off (production) it cannot be moved at all.

Row timestamps (created, updated) stay real time: they say when things happened, not when they are due.
"""

from __future__ import annotations

import datetime
import re

from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from jobkit.models import ClockAdvance

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class ClockLocked(Exception):
    """This deployment does not let the clock move (production)."""


def offset() -> datetime.timedelta:
    """How far the shop clock runs ahead of real time (a query: advances are rare, reads cheap)."""
    return datetime.timedelta(seconds=ClockAdvance.objects.aggregate(total=Sum("seconds"))["total"] or 0)


def now() -> datetime.datetime:
    return timezone.now() + offset()


def today() -> datetime.date:
    return timezone.localdate(now())


def advance(by: datetime.timedelta, reason: str = "") -> ClockAdvance:
    """Move the clock forward by `by` (positive), recorded; refused where the clock is locked."""
    if not getattr(settings, "CLOCK_CAN_ADVANCE", False):
        raise ClockLocked("The shop clock cannot be moved here (CLOCK_CAN_ADVANCE is off in production).")
    seconds = by.total_seconds()
    if seconds <= 0:
        raise ValueError("The shop clock only moves forward: give a positive duration.")
    return ClockAdvance.objects.create(seconds=seconds, reason=reason[:200])


def parse_duration(text: str) -> datetime.timedelta:
    """ "90s", "15m", "1h", "1d", "2d12h" -> a timedelta; ValueError naming the problem otherwise."""
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhd])", text.strip().lower())
    if not parts or "".join(n + u for n, u in parts) != text.strip().lower():
        raise ValueError(f"{text!r} is not a duration like 90s, 15m, 1h, 1d or 2d12h.")
    return datetime.timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in parts))
