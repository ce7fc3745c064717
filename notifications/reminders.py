"""Payment reminders as database rows (pattern 5): +24 h, +48 h, +72 h by default (settings).

Never a countdown on the broker: a Redis broker hands an unacknowledged message back after its
visibility timeout, so a +24 h countdown would be delivered again and again. Rows with `due_at` are
claimed by a periodic job with SELECT ... FOR UPDATE SKIP LOCKED, and each send re-checks the subject.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jobkit import clock
from jobkit.registry import Registry
from notifications.models import Reminder
from notifications.services import MessageBuilder, send_once


class RemindedSubject(Protocol):
    """What the app owning a kind of subject registers (`handlers`, in its AppConfig.ready())."""

    # The ledger kind of its reminder emails; the nth reminder is sent as f"{email_kind}_{n}".
    email_kind: str

    def reminder_for(self, subject_id: str, reminder: Reminder) -> tuple[str, MessageBuilder] | None:
        """Lock the subject and re-check it: None if it no longer needs reminding (paid, cancelled),
        else the recipient and the message to send."""
        ...

    def give_up(self, subject_id: str) -> None:
        """The final reminder went out: end the subject's wait (expire the order, cancel...)."""
        ...


handlers: Registry[RemindedSubject] = Registry("reminder handler")


def schedule(subject: str) -> None:
    """Plan the reminders for an unpaid subject (call in the transaction that records the failure).

    After a later failure (paid again, declined again) the reminders called off by the payment count
    again from now; those already sent are not sent twice, and the final one still ends the subject."""
    now = clock.now()
    offsets = settings.REMINDER_OFFSETS_SECONDS
    for sequence, offset in enumerate(offsets, start=1):
        due_at = now + timedelta(seconds=offset)
        reminder, created = Reminder.objects.get_or_create(
            subject=subject, sequence=sequence, defaults={"due_at": due_at, "final": sequence == len(offsets)}
        )
        if not created and reminder.status == Reminder.Status.SKIPPED:
            reminder.status, reminder.due_at, reminder.handled_at = Reminder.Status.PENDING, due_at, None
            reminder.save(update_fields=["status", "due_at", "handled_at"])


def cancel(*subjects: str) -> int:
    """The subjects were paid (or cancelled): their pending reminders will not be sent."""
    if not subjects:
        return 0
    return Reminder.objects.filter(subject__in=subjects, status=Reminder.Status.PENDING).update(
        status=Reminder.Status.SKIPPED, handled_at=timezone.now()
    )


def send_due(limit: int = 100) -> int:
    """Handle up to `limit` due reminders; concurrent runs take disjoint rows. Returns how many."""
    handled = 0
    while handled < limit:
        with transaction.atomic():
            reminder = (
                Reminder.objects.select_for_update(skip_locked=True)
                .filter(status=Reminder.Status.PENDING, due_at__lte=clock.now())
                .order_by("due_at", "id")
                .first()
            )
            if reminder is None:
                break
            sent = _remind(reminder)
            reminder.status = Reminder.Status.SENT if sent else Reminder.Status.SKIPPED
            reminder.handled_at = timezone.now()
            reminder.save(update_fields=["status", "handled_at"])
        handled += 1
    return handled


def _remind(reminder: Reminder) -> bool:
    """Re-check the subject, send through the ledger (once per reminder), give up after the final one."""
    kind, subject_id = reminder.subject.split(":", 1)
    handler = handlers[kind]
    due = handler.reminder_for(subject_id, reminder)
    if due is None:
        return False
    recipient, build = due
    send_once(f"{handler.email_kind}_{reminder.sequence}", reminder.subject, recipient, build)
    if reminder.final:
        handler.give_up(subject_id)
    return True
