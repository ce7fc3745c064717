"""notifications.reminders.send_due: no database transaction is open while a reminder's email goes out
(a slow mail server would hold the subject's row lock, and on SQLite the whole database), a failed send
frees its reminder, and the final reminder ends only a subject that is still unpaid.

The email backend below is a real Django backend that keeps messages as the test backend does and notes
what the database connection was doing as each went out; the end-to-end proofs of reminders through the
SMTP sandbox are in tests/e2e/test_reminders.py.
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend
from django.db import connection, transaction
from django.utils import timezone

from jobkit.breaker import breaker_for
from jobkit.errors import TransientError
from notifications import reminders
from notifications.models import Notification, Reminder
from orders.checkout import CartLine, write_order
from orders.models import Order
from shop.factories import ProductFactory

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class Sent:
    subject: str
    in_transaction: bool


class WatchingBackend(BaseEmailBackend):
    """Notes, for each message, whether the sending connection was inside a transaction; `on_send` runs
    as a message goes out (a test makes the mail server fail, or a payment start meanwhile)."""

    sent: list[Sent] = []
    on_send: Callable[[EmailMessage], None] = staticmethod(lambda message: None)

    def send_messages(self, messages: Sequence[EmailMessage]) -> int:
        for message in messages:
            WatchingBackend.on_send(message)
            WatchingBackend.sent.append(Sent(message.subject, connection.in_atomic_block))
        return len(messages)


@pytest.fixture
def unpaid_order(settings: object, broker_url: str) -> Iterator[Order]:
    """An order whose payment failed, its three reminders all due."""
    settings.REDIS_URL = broker_url  # the mail breaker's state
    settings.EMAIL_BACKEND = f"{__name__}.WatchingBackend"
    WatchingBackend.sent, WatchingBackend.on_send = [], staticmethod(lambda message: None)
    breaker_for("mail").reset()
    product = ProductFactory(sku="TEA-REMIND", price=Decimal("5.00"), stock=10)
    with transaction.atomic():
        order = write_order(email="late@example.com", lines=[CartLine(product, 1)], payment_method="pm_x")
        Order.objects.filter(pk=order.pk).update(status=Order.Status.PAYMENT_FAILED)
        reminders.schedule(order.subject)
    Reminder.objects.update(due_at=timezone.now() - timedelta(seconds=1))
    yield order
    breaker_for("mail").reset()


def statuses() -> list[tuple[int, str, bool]]:
    """(sequence, status, claimed) of each reminder."""
    return [
        (r.sequence, r.status, r.claimed_until is not None) for r in Reminder.objects.order_by("sequence")
    ]


def test_no_transaction_is_open_while_a_reminder_goes_out(unpaid_order: Order) -> None:
    assert reminders.send_due() == 3

    assert [sent.in_transaction for sent in WatchingBackend.sent] == [False, False, False]
    assert statuses() == [(1, "sent", False), (2, "sent", False), (3, "sent", False)]
    assert Notification.objects.filter(status="sent").count() == 3
    assert Order.objects.get(pk=unpaid_order.pk).status == Order.Status.EXPIRED


def test_a_failed_send_frees_its_reminder_for_the_next_run(unpaid_order: Order) -> None:
    def mail_server_hangs_up(message: EmailMessage) -> None:
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")

    WatchingBackend.on_send = staticmethod(mail_server_hangs_up)
    with pytest.raises(TransientError):
        reminders.send_due()
    # neither the reminder nor its email stays held by the failed run
    assert statuses() == [(1, "pending", False), (2, "pending", False), (3, "pending", False)]
    assert Notification.objects.get().status == "pending"

    WatchingBackend.on_send = staticmethod(lambda message: None)
    assert reminders.send_due() == 3
    assert len(WatchingBackend.sent) == 3


def test_the_final_reminder_ends_only_a_subject_still_unpaid(unpaid_order: Order) -> None:
    paying = Order.objects.filter(pk=unpaid_order.pk)
    final_subject: list[str] = []

    def customer_pays_again_meanwhile(message: EmailMessage) -> None:
        if len(WatchingBackend.sent) == 2:  # the third, final reminder
            final_subject.append(message.subject)
            paying.update(status=Order.Status.PROCESSING)

    WatchingBackend.on_send = staticmethod(customer_pays_again_meanwhile)
    reminders.send_due()
    # The email went out, but the order is not expired under the payment. The final reminder was left
    # to the payment, and taken again at once: skipped, as the order is being paid.
    assert len(WatchingBackend.sent) == 3
    assert paying.get().status == Order.Status.PROCESSING
    assert statuses() == [(1, "sent", False), (2, "sent", False), (3, "skipped", False)]

    # Declined again: the final reminder is planned again; it is not sent twice, and the order ends.
    with transaction.atomic():
        paying.update(status=Order.Status.PAYMENT_FAILED)
        reminders.schedule(unpaid_order.subject)
    Reminder.objects.filter(sequence=3).update(due_at=timezone.now() - timedelta(seconds=1))
    reminders.send_due()
    assert [sent.subject for sent in WatchingBackend.sent[2:]] == final_subject
    assert paying.get().status == Order.Status.EXPIRED
    assert statuses()[2] == (3, "sent", False)
