"""Moving the shop clock (jobkit/clock.py) from /ops/ and knowing when the reminder job has looked since,
for the tests of pattern 5 (test_reminders.py) and of the clock (test_shop_clock.py). The shop runs its
real reminder offsets (+24/48/72 h) here: a test makes a reminder due by moving the clock, never by waiting.
"""

from __future__ import annotations

import email
import email.policy
from datetime import datetime, timedelta
from email.message import EmailMessage

from django.utils import timezone

from jobkit.models import ClockAdvance, JobRun
from sandbox.testing import SandboxControl
from tests.harness import Stack, wait_for

REMINDER_JOB = "notifications.send_due_reminders"


def advance_clock(staff, step: str) -> datetime:
    """Move the shop clock forward from /ops/ ("1h", "1d", "next_billing"), as staff do. Returns the real
    time once the move is committed: a reminder job that starts later reads the moved clock."""
    moves = ClockAdvance.objects.count()
    response = staff.post("/ops/", {"clock": step})
    assert response.status_code == 302 and ClockAdvance.objects.count() == moves + 1, response
    return timezone.now()


def reminder_job_looked_since(since: datetime) -> bool:
    """A run of the reminder job that started after `since` has succeeded, and every run that was working
    beside it has finished: each reminder due by the shop clock at `since` has been sent or skipped (a run
    passes over a row another run holds; that run handles it)."""
    runs = JobRun.objects.filter(name=REMINDER_JOB)
    looked = runs.filter(status=JobRun.Status.SUCCEEDED, started_at__gt=since).order_by("finished_at").first()
    return looked is not None and not (
        runs.filter(status=JobRun.Status.STARTED, started_at__lt=looked.finished_at).exists()
    )


def wait_for_reminder_job(stack: Stack, since: datetime) -> None:
    """Wait until the reminder job (sent by a beat every half second) has demonstrably looked since."""
    wait_for(lambda: reminder_job_looked_since(since), 30, stack.logs)


def reminders_about(sandbox: SandboxControl, public_id: str, recipient: str) -> list[EmailMessage]:
    """The reminder emails the mail catcher received for one order or subscription (its page link is in
    the body), in the order they arrived."""
    found = []
    for listed in sandbox.mail_messages():
        if listed["subject"].startswith("Reminder") and listed["to"] == [recipient]:
            raw = sandbox.mail_message(listed["id"])
            message = email.message_from_bytes(raw, policy=email.policy.default)
            if public_id in message.get_content():
                found.append(message)
    return found


def numbers(mails: list[EmailMessage]) -> list[str]:
    """["Reminder 1", ...]: the subjects without what follows the colon."""
    return [m["Subject"].split(":")[0] for m in mails]


def shop_time_at(real: datetime) -> datetime:
    """What the shop clock read at a past real time: the moves recorded by then count."""
    moved = sum(a.seconds for a in ClockAdvance.objects.filter(at__lte=real))
    return real + timedelta(seconds=moved)
