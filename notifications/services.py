"""Send each email once per (kind, subject), through Django's email API (SMTP) and the mail breaker.

SMTP cannot be exactly-once: a server that accepted a message and then lost the connection before its
reply reached us looks the same as one that never got it. The ledger makes every other case send once;
that one case resends with the same Message-ID, which mail clients show as one message.
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.message import make_msgid
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from jobkit.errors import Deferred
from jobkit.outside import no_answer, outside_call, smtp_error
from jobkit.prepared import Arg
from jobkit.rows import insert_unless_taken
from notifications.models import Notification

MessageBuilder = Callable[[], EmailMessage]


def send_once(kind: str, subject: str, recipient: str, build: MessageBuilder) -> bool:
    """Send the email unless the ledger says it was sent; True if this call sent it."""
    notification = _claim(kind, subject, recipient)
    if notification is None:
        return False
    try:
        message = build()  # inside: a failed build (a template error, a lost connection) frees the claim
        message.to = [recipient]
        message.extra_headers["Message-ID"] = notification.message_id
        with outside_call("mail"):  # an open breaker raises CircuitOpen before any connection is made
            _deliver(message)
    except BaseException:
        # Not sent (as far as we can know): free the claim so the job's retry can send it.
        Notification.objects.filter(pk=notification.pk).update(
            status=Notification.Status.PENDING, lease_until=None
        )
        raise
    Notification.objects.filter(pk=notification.pk).update(
        status=Notification.Status.SENT, sent_at=timezone.now()
    )
    return True


def _deliver(message: EmailMessage) -> None:
    try:
        message.send(fail_silently=False)
    except smtplib.SMTPResponseException as exc:  # the server answered with a negative reply
        raise smtp_error("mail", exc.smtp_code, exc.smtp_error) from exc
    except smtplib.SMTPRecipientsRefused as exc:  # a negative reply per recipient (we send to one)
        code, reply = next(iter(exc.recipients.values()))
        raise smtp_error("mail", code, reply) from exc
    except (smtplib.SMTPException, OSError) as exc:  # refused, hung up, timed out (EMAIL_TIMEOUT)
        raise no_answer("mail", exc) from exc


def send_lease() -> timedelta:
    """How long a sender holds an email it is sending: a connection and a send, each up to EMAIL_TIMEOUT,
    and 10 s for the database around them. A sender that died lets go when it passes."""
    return timedelta(seconds=2 * settings.EMAIL_TIMEOUT + 10)


def was_sent(kind: str, subject: str) -> bool:
    return sent(kind, subject).exists()


def sent(kind: str, subject: str | Arg) -> QuerySet[Notification]:
    """The ledger's row of this email if it was sent: a query to test (`Exists`) inside a larger one,
    found through the ledger's unique index (kind, subject). The subject may be a prepared query's
    argument (`jobkit/prepared.py`)."""
    return Notification.objects.filter(kind=kind, subject=subject, status=Notification.Status.SENT)


def _claim(kind: str, subject: str, recipient: str) -> Notification | None:
    """The ledger's row of this email, held by this sender for a lease; None once the email was sent.

    A new row is written as held by this sender (`sending`): one INSERT in the common case. A row that
    exists already is locked to be taken over (`_take_over`)."""
    domain = settings.DEFAULT_FROM_EMAIL.rsplit("@", 1)[-1].strip(">") or "shop.local"
    now = timezone.now()
    lease_until = now + send_lease()
    message_id = make_msgid(idstring=kind, domain=domain)
    claimed = Notification(
        kind=kind,
        subject=subject,
        recipient=recipient,
        message_id=message_id,
        status=Notification.Status.SENDING,
        attempts=1,
        lease_until=lease_until,
    )
    if insert_unless_taken(claimed):
        return claimed
    return _take_over(kind, subject, now, lease_until)


@transaction.atomic
def _take_over(kind: str, subject: str, now: datetime, lease_until: datetime) -> Notification | None:
    """Hold an existing ledger row, unless it was sent or another sender's lease still runs."""
    notification = Notification.objects.select_for_update().get(kind=kind, subject=subject)
    if notification.status == Notification.Status.SENT:
        return None
    if notification.status == Notification.Status.SENDING and notification.lease_until > now:
        # Wait for the other sender's lease, spending no retry: it sends, or its lease runs out. Looked at
        # again at least every retry backoff's cap, so the countdown stays below the broker's visibility
        # timeout (the lease can be longer; shop/settings.py checks every countdown against it).
        retry_after = min(
            (notification.lease_until - now).total_seconds(), settings.JOB_RETRY_BACKOFF_MAX_SECONDS
        )
        raise Deferred(f"{kind} for {subject} is being sent by another worker", retry_after)
    notification.status = Notification.Status.SENDING
    notification.attempts += 1
    notification.lease_until = lease_until
    notification.save(update_fields=["status", "attempts", "lease_until"])
    return notification
