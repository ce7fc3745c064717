"""Pattern 5: reminders are database rows with a due time, claimed by a beat job with SKIP LOCKED,
and every send re-checks the state first. The reminders come due at the shop's real offsets (+24/48/72 h):
each test moves the shop clock a day at a time (tests/e2e/shop_clock.py) and waits until the reminder job
has looked since, so what was due has been handled and what was not has not, whatever the machine's speed.
"""

from __future__ import annotations

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
from tests.e2e.shop_clock import (
    advance_clock,
    numbers,
    reminders_about,
    shop_time_at,
    wait_for_reminder_job,
)
from tests.e2e.test_subscriptions import intents_for, sign_up, wait_for_subscription
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


def first(count: int) -> list[str]:
    return [f"Reminder {n}" for n in range(1, count + 1)]


def assert_one_email_per_reminder(mails: list[EmailMessage], subject: str) -> None:
    """Reminders 1, 2, 3 arrived in that order, each exactly once: the message the ledger recorded."""
    assert numbers(mails) == first(3)
    ledger = Notification.objects.filter(subject=subject, kind__contains="payment_reminder").order_by("kind")
    assert [m["Message-ID"].strip() for m in mails] == list(ledger.values_list("message_id", flat=True))
    reminders = Reminder.objects.filter(subject=subject).order_by("sequence")
    assert [r.status for r in reminders] == ["sent", "sent", "sent"]
    early = [r.sequence for r in reminders if shop_time_at(r.handled_at) < r.due_at]
    assert early == []  # none went out before it was due by the shop clock


def reminder_jobs_sent(beat: Child) -> list[datetime]:
    """When this beat sent the reminder job, from its log."""
    stamps = BEAT_SENT_REMINDERS.findall(beat.log_path.read_text(errors="replace"))
    return [datetime.strptime(s, "%Y-%m-%d %H:%M:%S,%f").astimezone() for s in stamps]


def test_three_reminders_in_order_once_each_then_the_order_expires(staff, workers, catalogue, wait_for_order):
    workers.add_worker("second-worker")
    began = timezone.now()
    # A second scheduler, as after a careless deploy: both send the reminder job, still one email each.
    beats = [workers.add_beat("beat-1"), workers.add_beat("beat-2")]
    wait_for(lambda: all(any(t > began for t in reminder_jobs_sent(b)) for b in beats), 30, workers.logs)
    order_id = declined_order(staff)
    other_id = declined_order(staff, email="grace@example.com", sku="TEA-EARL")  # reminded alongside
    wait_for_order(order_id, "payment_failed")
    wait_for_order(other_id, "payment_failed")
    assert Product.objects.get(sku="MUG-BLUE").stock == 3  # reserved while the customer may still pay

    def mails() -> tuple[list[str], list[str]]:
        return (
            numbers(reminders_about(workers.sandbox, order_id, "ada@example.com")),
            numbers(reminders_about(workers.sandbox, other_id, "grace@example.com")),
        )

    for day in (1, 2):  # +24 h, +48 h: one more reminder each, the next one not yet
        since = advance_clock(staff, "1d")
        wait_for_reminder_job(workers, since)
        assert mails() == (first(day), first(day))
        assert set(Order.objects.values_list("status", flat=True)) == {"payment_failed"}

    advance_clock(staff, "1d")  # +72 h: the final reminder, then the orders expire
    wait_for_order(order_id, "expired")
    wait_for_order(other_id, "expired")
    order, other = Order.objects.get(public_id=order_id), Order.objects.get(public_id=other_id)
    assert_one_email_per_reminder(
        reminders_about(workers.sandbox, order_id, "ada@example.com"), order.subject
    )
    assert_one_email_per_reminder(
        reminders_about(workers.sandbox, other_id, "grace@example.com"), other.subject
    )
    assert Product.objects.get(sku="MUG-BLUE").stock == 5  # released on expiry
    assert staff.get(f"/api/orders/{order_id}").json()["invoice"]["status"] == "void"

    # Both beats kept sending the reminder job until after the last reminder, and are still running.
    last = Reminder.objects.filter(subject=order.subject).order_by("sequence").last().handled_at
    for beat in beats:
        wait_for(
            lambda b=beat: any(t > last for t in reminder_jobs_sent(b)),
            10,
            lambda b=beat: f"{b.name} sent no reminder job after the last reminder\n{workers.logs()}",
        )
        assert beat.alive(), f"{beat.name} exited\n{beat.output_tail()}"


def test_paying_between_the_first_and_second_reminder_stops_the_rest(
    staff, workers, catalogue, wait_for_order
):
    workers.add_beat("beat-1")
    order_id = declined_order(staff)
    wait_for_order(order_id, "payment_failed")
    since = advance_clock(staff, "1d")
    wait_for_reminder_job(workers, since)
    assert numbers(reminders_about(workers.sandbox, order_id, "ada@example.com")) == ["Reminder 1"]

    response = staff.post(
        f"/api/orders/{order_id}/pay",
        data=json.dumps({"payment_method": "pm_card_visa"}),
        content_type="application/json",
    )
    assert response.status_code == 202
    paid = timezone.now()
    wait_for_order(order_id, "completed")
    reminders = Reminder.objects.filter(subject=f"order:{order_id}").order_by("sequence")
    assert [(r.sequence, r.status) for r in reminders] == [(1, "sent"), (2, "skipped"), (3, "skipped")]
    assert all(r.handled_at <= paid for r in reminders)  # 2 and 3 were called off by the payment itself

    for _ in range(2):  # +48 h, +72 h: reminders 2 and 3 would be due now
        since = advance_clock(staff, "1d")
    wait_for_reminder_job(workers, since)
    assert numbers(reminders_about(workers.sandbox, order_id, "ada@example.com")) == ["Reminder 1"]
    assert Order.objects.get(public_id=order_id).status == "completed"  # paid: it does not expire
    intents = [pi for pi in workers.sandbox.payment_intents() if pi["metadata"].get("order_id") == order_id]
    assert [pi["status"] for pi in intents] == ["requires_payment_method", "succeeded"]


def test_declined_again_after_paying_again_the_reminders_left_come_and_the_order_expires(
    staff, workers, catalogue, wait_for_order
):
    workers.add_beat("beat-1")
    order_id = declined_order(staff)
    wait_for_order(order_id, "payment_failed")
    wait_for_reminder_job(workers, advance_clock(staff, "1d"))
    assert numbers(reminders_about(workers.sandbox, order_id, "ada@example.com")) == ["Reminder 1"]

    again = {"payment_method": "pm_card_chargeDeclined"}
    response = staff.post(
        f"/api/orders/{order_id}/pay", data=json.dumps(again), content_type="application/json"
    )
    assert response.status_code == 202
    wait_for_order(order_id, "payment_failed")
    wait_for(
        lambda: Reminder.objects.filter(subject=f"order:{order_id}", status="pending").count() == 2,
        30,
        workers.logs,
    )  # 2 and 3, called off by the payment attempt, count again from its failure

    wait_for_reminder_job(workers, advance_clock(staff, "1d"))
    assert numbers(reminders_about(workers.sandbox, order_id, "ada@example.com")) == ["Reminder 1"]
    wait_for_reminder_job(workers, advance_clock(staff, "1d"))  # +48 h after the second decline
    assert numbers(reminders_about(workers.sandbox, order_id, "ada@example.com")) == [
        "Reminder 1",
        "Reminder 2",
    ]
    advance_clock(staff, "1d")
    wait_for_order(order_id, "expired")
    assert numbers(reminders_about(workers.sandbox, order_id, "ada@example.com")) == [
        "Reminder 1",
        "Reminder 2",
        "Reminder 3",
    ]
    intents = [pi for pi in workers.sandbox.payment_intents() if pi["metadata"].get("order_id") == order_id]
    assert [pi["status"] for pi in intents] == ["requires_payment_method", "requires_payment_method"]


def test_a_declined_renewal_is_reminded_once_each_then_cancelled(staff, workers, plans):
    subscription_id = sign_up(staff, email="lin@example.com").json()["id"]
    subscription = wait_for_subscription(workers, subscription_id, "active")
    Subscription.objects.filter(pk=subscription.pk).update(payment_method="pm_card_chargeDeclined")
    workers.add_beat("beat-1")

    call_command("bill_due", date=subscription.current_period_end.isoformat())
    past_due = wait_for_subscription(workers, subscription_id, "past_due")
    assert "declined" in past_due.status_reason.lower()
    for day in (1, 2):
        since = advance_clock(staff, "1d")
        wait_for_reminder_job(workers, since)
        mails = reminders_about(workers.sandbox, subscription_id, "lin@example.com")
        assert numbers(mails) == first(day)
        assert Subscription.objects.get(pk=subscription.pk).status == "past_due"  # not cancelled by these

    advance_clock(staff, "1d")
    cancelled = wait_for_subscription(workers, subscription_id, "cancelled")
    assert cancelled.status_reason == "Not paid after the final reminder."
    mails = reminders_about(workers.sandbox, subscription_id, "lin@example.com")
    assert_one_email_per_reminder(mails, cancelled.subject)
    assert "last reminder" in mails[-1].get_content() and "last reminder" not in mails[0].get_content()
    assert [pi["status"] for pi in intents_for(workers, subscription_id)] == [
        "succeeded",
        "requires_payment_method",
    ]
