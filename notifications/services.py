"""Send each email once per (kind, subject), through Django's email API (SMTP) and the mail breaker.

SMTP cannot be exactly-once: a server that accepted a message and then lost the connection before its
reply reached us looks the same as one that never got it. The ledger makes every other case send once;
that one case resends with the same Message-ID, which mail clients show as one message.
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.message import make_msgid
from django.db import transaction
from django.utils import timezone

from jobkit.errors import Deferred
from jobkit.outside import no_answer, outside_call, smtp_error
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
    return kind in kinds_sent(subject, [kind])


def kinds_sent(subject: str, kinds: list[str]) -> set[str]:
    """Which of these kinds of email about `subject` were sent, in one query (on the ledger's unique
    index, which starts with the kind)."""
    sent = Notification.objects.filter(kind__in=kinds, subject=subject, status=Notification.Status.SENT)
    return set(sent.values_list("kind", flat=True))


@transaction.atomic
def _claim(kind: str, subject: str, recipient: str) -> Notification | None:
    domain = settings.DEFAULT_FROM_EMAIL.rsplit("@", 1)[-1].strip(">") or "shop.local"
    now = timezone.now()
    lease_until = now + send_lease()
    message_id = make_msgid(idstring=kind, domain=domain)
    # Insert-or-nothing, then read the row locked: two statements where get_or_create takes four (a
    # savepoint around its insert). The row is new, and this sender's, when it holds our Message-ID.
    claimed = Notification(
        kind=kind,
        subject=subject,
        recipient=recipient,
        message_id=message_id,
        status=Notification.Status.SENDING,  # a new row is claimed as it is written: this sender holds it
        attempts=1,
        lease_until=lease_until,
    )
    Notification.objects.bulk_create([claimed], ignore_conflicts=True)
    notification = Notification.objects.select_for_update().get(kind=kind, subject=subject)
    if notification.message_id == message_id:
        return notification
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
