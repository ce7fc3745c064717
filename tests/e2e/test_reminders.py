"""Pattern 5: reminders are database rows with a due time, claimed by a beat job with SKIP LOCKED,
and every send re-checks the state first. Offsets are seconds here (REMINDER_OFFSETS in conftest)."""

from __future__ import annotations

import email
import email.policy
import json
import re
from datetime import datetime
from email.message import EmailMessage

import pytest
from django.core.management import call_command
from django.utils import timezone

from devstack.processes import Child
from notifications.models import Notification, Reminder
from orders.models import Order, Product
from subscriptions.models import Subscription
from tests.conftest import REMINDER_OFFSETS
from tests.e2e.test_subscriptions import sign_up, wait_for_subscription
from tests.harness import wait_for

pytestmark = pytest.mark.e2e

# Celery beat's log line for each job it sends, stamped in local time.
BEAT_SENT_REMINDERS = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): INFO/MainProcess\] "
    r"Scheduler: Sending due task send-due-reminders \(notifications\.send_due_reminders\)",
    re.MULTILINE,
)


def declined_order(client, email: str = "ada@example.com", sku: str = "MUG-BLUE") -> str:
    body = {
        "email": email,
        "items": [{"sku": sku, "quantity": 2}],
        "payment_method": "pm_card_chargeDeclined",
    }
    return client.post("/api/orders", data=json.dumps(body), content_type="application/json").json()["id"]


def reminders_about(sandbox, public_id: str, recipient: str) -> list[EmailMessage]:
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


def assert_one_email_per_reminder(mails: list[EmailMessage], subject: str) -> None:
    """Reminders 1, 2, 3 arrived in that order, each exactly once: the message the ledger recorded."""
    assert [m["Subject"].split(":")[0] for m in mails] == ["Reminder 1", "Reminder 2", "Reminder 3"]
    ledger = Notification.objects.filter(subject=subject, kind__contains="payment_reminder").order_by("kind")
    assert [m["Message-ID"].strip() for m in mails] == list(ledger.values_list("message_id", flat=True))
    reminders = Reminder.objects.filter(subject=subject).order_by("sequence")
    assert [r.status for r in reminders] == ["sent", "sent", "sent"]
    assert [r.sequence for r in reminders if r.handled_at < r.due_at] == []  # none went out early


def reminder_jobs_sent(beat: Child) -> list[datetime]:
    """When this beat sent the reminder job, from its log."""
    stamps = BEAT_SENT_REMINDERS.findall(beat.log_path.read_text(errors="replace"))
    return [datetime.strptime(s, "%Y-%m-%d %H:%M:%S,%f").astimezone() for s in stamps]


def test_three_reminders_in_order_once_each_then_the_order_expires(
    client, workers, catalogue, wait_for_order
):
    workers.add_worker("second-worker")
    began = timezone.now()
    # A second scheduler, as after a careless deploy: both send the reminder job, still one email each.
    beats = [workers.add_beat("beat-1"), workers.add_beat("beat-2")]
    wait_for(lambda: all(any(t > began for t in reminder_jobs_sent(b)) for b in beats), 30, workers.logs)
    order_id = declined_order(client)
    other_id = declined_order(client, email="grace@example.com", sku="TEA-EARL")  # reminded alongside
    wait_for_order(order_id, "payment_failed")
    assert Product.objects.get(sku="MUG-BLUE").stock == 3  # reserved while the customer may still pay

    wait_for_order(order_id, "expired", timeout=sum(REMINDER_OFFSETS) + 30)
    wait_for_order(other_id, "expired")
    order, other = Order.objects.get(public_id=order_id), Order.objects.get(public_id=other_id)
    assert_one_email_per_reminder(
        reminders_about(workers.sandbox, order_id, "ada@example.com"), order.subject
    )
    assert_one_email_per_reminder(
        reminders_about(workers.sandbox, other_id, "grace@example.com"), other.subject
    )
    assert Product.objects.get(sku="MUG-BLUE").stock == 5  # released on expiry
    assert client.get(f"/api/orders/{order_id}").json()["invoice"]["status"] == "void"

    # Both beats kept sending the reminder job until after the last reminder, and are still running.
    last = Reminder.objects.filter(subject=order.subject).order_by("sequence").last().handled_at
    for beat in beats:
        wait_for(
            lambda b=beat: any(t > last for t in reminder_jobs_sent(b)),
            10,
            lambda b=beat: f"{b.name} sent no reminder job after the last reminder\n{workers.logs()}",
        )
        assert beat.alive(), f"{beat.name} exited\n{beat.output_tail()}"


def test_paying_before_the_second_reminder_stops_the_rest(client, workers, catalogue, wait_for_order):
    workers.add_beat("beat-1")
    order_id = declined_order(client)
    wait_for_order(order_id, "payment_failed")
    wait_for(
        lambda: reminders_about(workers.sandbox, order_id, "ada@example.com"),
        REMINDER_OFFSETS[0] + 15,
        workers.logs,
    )

    response = client.post(
        f"/api/orders/{order_id}/pay",
        data=json.dumps({"payment_method": "pm_card_visa"}),
        content_type="application/json",
    )
    assert response.status_code == 202
    wait_for_order(order_id, "completed")
    wait_for(  # let the later reminders come due
        lambda: not Reminder.objects.filter(status="pending").exists(),
        REMINDER_OFFSETS[-1] + 15,
        workers.logs,
    )
    mails = reminders_about(workers.sandbox, order_id, "ada@example.com")
    assert [m["Subject"].split(":")[0] for m in mails] == ["Reminder 1"]
    assert sorted(Reminder.objects.values_list("sequence", "status")) == [
        (1, "sent"),
        (2, "skipped"),
        (3, "skipped"),
    ]


def test_a_declined_renewal_is_reminded_once_each_then_cancelled(client, workers, plans):
    subscription_id = sign_up(client, email="lin@example.com").json()["id"]
    subscription = wait_for_subscription(workers, subscription_id, "active")
    Subscription.objects.filter(pk=subscription.pk).update(payment_method="pm_card_chargeDeclined")
    workers.add_beat("beat-1")

    call_command("bill_due", date=subscription.current_period_end.isoformat())
    past_due = wait_for_subscription(workers, subscription_id, "past_due")
    assert "declined" in past_due.status_reason.lower()
    wait_for(
        lambda: reminders_about(workers.sandbox, subscription_id, "lin@example.com"),
        REMINDER_OFFSETS[0] + 15,
        workers.logs,
    )
    assert Subscription.objects.get(pk=subscription.pk).status == "past_due"  # not cancelled by the first

    cancelled = wait_for_subscription(
        workers, subscription_id, "cancelled", timeout=sum(REMINDER_OFFSETS) + 30
    )
    assert cancelled.status_reason == "Not paid after the final reminder."
    mails = reminders_about(workers.sandbox, subscription_id, "lin@example.com")
    assert_one_email_per_reminder(mails, cancelled.subject)
    assert "last reminder" in mails[-1].get_content() and "last reminder" not in mails[0].get_content()
