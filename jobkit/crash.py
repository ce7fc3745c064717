"""Crash points: a documented test hook that kills the worker at a chosen line, once.

Set SHOP_CRASH_AT=<point> and SHOP_CRASH_MARKER=<file> in a worker's environment. When the code
reaches `crash_point("<point>")` and the marker file does not exist yet, the marker is created and
the whole worker (main process and pool, one process group) is killed with SIGKILL: no cleanup, no
acknowledgement, exactly like a power cut. Unset, a crash point costs one dictionary lookup.

Points: `after_gateway_charge` (billing/services.py: the gateway charged, the result is not recorded);
`mid_billing_batch` (subscriptions/renewals.py: one subscription of a batch billed, the rest not yet).
"""

from __future__ import annotations

import os
import signal


def crash_point(name: str) -> None:
    if os.environ.get("SHOP_CRASH_AT") != name:
        return
    marker = os.environ.get("SHOP_CRASH_MARKER", "")
    if not marker:
        return
    try:
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return  # already crashed here once
    os.close(fd)
    os.killpg(os.getpgrp(), signal.SIGKILL)
