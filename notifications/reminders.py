"""Payment reminders as database rows (pattern 5): +24 h, +48 h, +72 h by default (settings).

Never a countdown on the broker: a Redis broker hands an unacknowledged message back after its
visibility timeout, so a +24 h countdown would be delivered again and again. Rows with `due_at` are
claimed by a periodic job with SELECT ... FOR UPDATE SKIP LOCKED and a lease (`claimed_until`), committed
before the email goes out, and each send re-checks the subject.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from jobkit import clock
from jobkit.registry import Registry
from notifications.models import Reminder
from notifications.services import MessageBuilder, send_lease, send_once


class RemindedSubject(Protocol):
    """What the app owning a kind of subject registers (`handlers`, in its AppConfig.ready())."""

    # The ledger kind of its reminder emails; the nth reminder is sent as f"{email_kind}_{n}".
    email_kind: str

    def reminder_for(self, subject_id: str, reminder: Reminder) -> tuple[str, MessageBuilder] | None:
        """Re-check the subject (under its lock): None if it no longer needs reminding (paid, cancelled),
        else the recipient and the message to send."""
        ...

    def give_up(self, subject_id: str) -> bool:
        """The final reminder went out: end the subject's wait (expire the order, cancel...). False, and
        nothing changed, if a payment got under way while the email went out (re-checked under the
        subject's lock)."""
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
    """Handle up to `limit` due reminders; concurrent runs take disjoint rows. Returns how many.

    No transaction is open while an email goes out: each reminder is claimed and committed first, so a
    slow or dead mail server holds no row lock (and on SQLite, no lock on the whole database)."""
    handled = 0
    while handled < limit and (reminder := _claim_next()) is not None:
        try:
            _remind(reminder)
        except BaseException:
            # Not handled (the mail server failed, its breaker is open): free the claim, so the job's
            # retry or the next run takes the reminder again.
            Reminder.objects.filter(pk=reminder.pk).update(claimed_until=None)
            raise
        handled += 1
    return handled


@transaction.atomic
def _claim_next() -> Reminder | None:
    """The first due reminder no live sender holds, held for as long as a send may take."""
    now = timezone.now()
    reminder = (
        Reminder.objects.select_for_update(skip_locked=True)
        .filter(status=Reminder.Status.PENDING, due_at__lte=clock.now())
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lte=now))
        .order_by("due_at", "id")
        .first()
    )
    if reminder is not None:
        reminder.claimed_until = now + send_lease()
        reminder.save(update_fields=["claimed_until"])
    return reminder


def _remind(reminder: Reminder) -> None:
    """Re-check the subject, send through the ledger (once per reminder), give up after the final one."""
    kind, subject_id = reminder.subject.split(":", 1)
    handler = handlers[kind]
    with transaction.atomic():
        due = handler.reminder_for(subject_id, reminder)
    if due is not None:
        recipient, build = due
        send_once(f"{handler.email_kind}_{reminder.sequence}", reminder.subject, recipient, build)
    with transaction.atomic():
        reminder = Reminder.objects.select_for_update().get(pk=reminder.pk)
        handled = None
        if due is not None and (not reminder.final or handler.give_up(subject_id)):
            handled = Reminder.Status.SENT  # even if a payment called it off meanwhile: it went out
        elif due is None and reminder.status == Reminder.Status.PENDING:
            handled = Reminder.Status.SKIPPED
        # Else the final reminder went out while a payment was under way: the payment decides, and if it
        # is declined the reminder comes due again (sent once all the same) and the subject ends then.
        if handled is not None:
            reminder.status, reminder.handled_at = handled, timezone.now()
        reminder.claimed_until = None
        reminder.save(update_fields=["status", "handled_at", "claimed_until"])
