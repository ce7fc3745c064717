"""Payment reminders as database rows (pattern 5): +24 h, +48 h, +72 h by default (settings).

Never a countdown on the broker: a Redis broker hands an unacknowledged message back after its
visibility timeout, so a +24 h countdown would be delivered again and again. Rows with `due_at` are
claimed by a periodic job with SELECT ... FOR UPDATE SKIP LOCKED, and each send re-checks the subject.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jobkit.registry import Registry
from notifications.models import Reminder

# What each kind of subject does with a due reminder, `handler(subject_id, reminder) -> sent?`, registered
# by the app that owns the kind. It re-checks state, sends through the ledger, and ends the subject's wait
# after the final one.
handlers: Registry[Callable[[str, Reminder], bool]] = Registry("reminder handler")


def schedule(subject: str) -> None:
    """Plan the reminders for an unpaid subject (call in the transaction that records the failure)."""
    now = timezone.now()
    offsets = settings.REMINDER_OFFSETS_SECONDS
    for sequence, offset in enumerate(offsets, start=1):
        Reminder.objects.get_or_create(
            subject=subject,
            sequence=sequence,
            defaults={"due_at": now + timedelta(seconds=offset), "final": sequence == len(offsets)},
        )


def cancel(subject: str) -> int:
    """The subject was paid (or cancelled): its pending reminders will not be sent."""
    return Reminder.objects.filter(subject=subject, status=Reminder.Status.PENDING).update(
        status=Reminder.Status.SKIPPED, handled_at=timezone.now()
    )


def send_due(limit: int = 100) -> int:
    """Handle up to `limit` due reminders; concurrent runs take disjoint rows. Returns how many."""
    handled = 0
    while handled < limit:
        with transaction.atomic():
            reminder = (
                Reminder.objects.select_for_update(skip_locked=True)
                .filter(status=Reminder.Status.PENDING, due_at__lte=timezone.now())
                .order_by("due_at", "id")
                .first()
            )
            if reminder is None:
                break
            kind, subject_id = reminder.subject.split(":", 1)
            sent = handlers[kind](subject_id, reminder)  # re-checks state; sends through the ledger
            reminder.status = Reminder.Status.SENT if sent else Reminder.Status.SKIPPED
            reminder.handled_at = timezone.now()
            reminder.save(update_fields=["status", "handled_at"])
        handled += 1
    return handled
