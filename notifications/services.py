"""Send each email at most once per (kind, subject), through Django's email API (SMTP)."""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.message import make_msgid
from django.db import transaction
from django.utils import timezone

from jobkit.errors import PermanentError, TransientError
from notifications.models import Notification

MessageBuilder = Callable[[], EmailMessage]


def send_once(kind: str, subject: str, recipient: str, build: MessageBuilder) -> bool:
    """Send the email unless the ledger says it was sent; True if this call sent it."""
    notification = _claim(kind, subject, recipient)
    if notification is None:
        return False
    message = build()
    message.to = [recipient]
    message.extra_headers["Message-ID"] = notification.message_id
    try:
        message.send(fail_silently=False)
    except (smtplib.SMTPException, OSError) as exc:
        Notification.objects.filter(pk=notification.pk).update(
            status=Notification.Status.PENDING, lease_until=None
        )
        raise TransientError(f"mail server: {exc}") from exc
    Notification.objects.filter(pk=notification.pk).update(
        status=Notification.Status.SENT, sent_at=timezone.now()
    )
    return True


def _deliver(message: EmailMessage) -> None:
    try:
        message.send(fail_silently=False)
    except smtplib.SMTPResponseException as exc:
        if exc.smtp_code >= 500:  # the server refused this message for good (bad address, too big)
            raise PermanentError(
                f"mail server refused the message: {exc.smtp_code} {exc.smtp_error!r}"
            ) from exc
        raise TransientError(f"mail server: {exc.smtp_code} {exc.smtp_error!r}") from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise TransientError(f"mail server: {exc}") from exc


def was_sent(kind: str, subject: str) -> bool:
    return Notification.objects.filter(kind=kind, subject=subject, status=Notification.Status.SENT).exists()


@transaction.atomic
def _claim(kind: str, subject: str, recipient: str) -> Notification | None:
    domain = settings.DEFAULT_FROM_EMAIL.rsplit("@", 1)[-1].strip(">") or "shop.local"
    notification, _ = Notification.objects.select_for_update().get_or_create(
        kind=kind,
        subject=subject,
        defaults={"recipient": recipient, "message_id": make_msgid(idstring=kind, domain=domain)},
    )
    now = timezone.now()
    if notification.status == Notification.Status.SENT:
        return None
    if notification.status == Notification.Status.SENDING and notification.lease_until > now:
        raise TransientError(f"{kind} for {subject} is being sent by another worker", outage=False)
    notification.status = Notification.Status.SENDING
    notification.attempts += 1
    notification.lease_until = now + timedelta(seconds=2 * settings.EMAIL_TIMEOUT + 10)
    notification.save(update_fields=["status", "attempts", "lease_until"])
    return notification
