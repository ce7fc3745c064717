"""Crash points and fail points: documented test hooks that kill the worker, or fail a step for good,
at a chosen line.

Set SHOP_CRASH_AT=<point> and SHOP_CRASH_MARKER=<file> in a worker's environment. When the code
reaches `crash_point("<point>")` and the marker file does not exist yet, the marker is created and
the whole worker (main process and pool, one process group) is killed with SIGKILL: no cleanup, no
acknowledgement, exactly like a power cut. Unset, a crash point costs one environment lookup.

Points: `after_gateway_charge` (billing/payments.py: the gateway charged, the result is not recorded);
`after_gateway_refund` (billing/payments.py: the gateway refunded, the refund is not recorded);
`after_billing_batch_staged` (subscriptions/renewals.py: a billing batch's invoices and payment attempts
committed, no call made); `after_billing_batch_called` (subscriptions/renewals.py: the gateway answered a
billing batch's first calls, none recorded, others still in flight).

SHOP_FAIL_AT=<point> makes `fail_point("<point>")` raise PermanentError every time it is reached, for a
step with no outside service whose permanent failure a test must provoke. Point: `grant_entitlement`
(subscriptions/signup.py: the entitlement step after the carrier registration).
"""

from __future__ import annotations

import os
import signal

from envconfig import env_str
from jobkit.errors import PermanentError


def crash_point(name: str) -> None:
    if env_str("SHOP_CRASH_AT") != name:
        return
    marker = env_str("SHOP_CRASH_MARKER")
    if not marker:
        return
    try:
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return  # already crashed here once
    os.close(fd)
    os.killpg(os.getpgrp(), signal.SIGKILL)


def fail_point(name: str) -> None:
    if env_str("SHOP_FAIL_AT") == name:
        raise PermanentError(f"fail point {name} (SHOP_FAIL_AT)")
