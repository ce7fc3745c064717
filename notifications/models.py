from __future__ import annotations

from django.db import models


class Notification(models.Model):
    """The ledger of emails the shop sends: one row per (kind, subject), enforced by the database.

    A sender claims the row (status `sending`, with a lease) in its own transaction before talking SMTP
    and marks it `sent` after, so a duplicate job finds it claimed or sent and does not send again.
    Only a worker that dies between the SMTP reply and the commit can cause a resend, after the lease
    expires; the resent message carries the same Message-ID, so mail clients show it once.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        SENDING = "sending"
        SENT = "sent"

    kind = models.CharField(max_length=40)
    subject = models.CharField(max_length=80, help_text="kind:id of what the email is about")
    recipient = models.EmailField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    lease_until = models.DateTimeField(null=True, blank=True)
    message_id = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "subject"], name="one_notification_per_kind_subject")
        ]

    def __str__(self) -> str:
        return f"{self.kind} for {self.subject} ({self.status})"


class Reminder(models.Model):
    """A scheduled reminder, kept as a row with its due time (never a long countdown on the broker).

    A periodic job claims due rows with SELECT ... FOR UPDATE SKIP LOCKED and holds each for a lease
    (`claimed_until`), so two beats or two workers never take the same row, and re-checks the subject's
    state before sending.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        SKIPPED = "skipped"  # the subject no longer needed it (paid, cancelled)

    subject = models.CharField(max_length=80, help_text="kind:id of what the reminder is about")
    sequence = models.PositiveSmallIntegerField(help_text="1, 2, 3: the nth reminder")
    final = models.BooleanField(default=False, help_text="after this one, the subject expires")
    due_at = models.DateTimeField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    handled_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(
        null=True, blank=True, help_text="a sender holds it until then (a sender that died lets go then)"
    )

    class Meta:
        ordering = ["due_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["subject", "sequence"], name="one_reminder_per_subject_sequence")
        ]
        indexes = [models.Index(fields=["status", "due_at"])]

    def __str__(self) -> str:
        return f"reminder {self.sequence} for {self.subject} ({self.status})"
