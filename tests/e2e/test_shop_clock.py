"""The shop clock (jobkit/clock.py): reminders at their real offsets (+24/48/72 h) and a monthly renewal,
made to happen in seconds by moving the clock forward, from /ops/ as a visitor would."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from jobkit import clock
from orders.models import Order
from subscriptions.models import Subscription
from tests.e2e.shop_clock import advance_clock, numbers, reminders_about, wait_for_reminder_job
from tests.e2e.test_subscriptions import intents_for, sign_up, wait_for_subscription
from tests.harness import wait_for

pytestmark = pytest.mark.e2e


def test_reminders_come_due_as_the_clock_moves_a_day_at_a_time(staff, workers, catalogue, wait_for_order):
    workers.add_beat("beat")
    body = {"email": "ada@example.com", "items": [{"sku": "MUG-BLUE", "quantity": 1}]}
    body["payment_method"] = "pm_card_chargeDeclined"
    order_id = staff.post("/api/orders", data=json.dumps(body), content_type="application/json").json()["id"]
    wait_for_order(order_id, "payment_failed")

    def reminded() -> list[str]:
        return numbers(reminders_about(workers.sandbox, order_id, "ada@example.com"))

    advance_clock(staff, "1h")
    since = advance_clock(staff, "1h")
    wait_for_reminder_job(workers, since)
    assert reminded() == []  # +2 h: nothing due yet

    for sent in (1, 2):
        since = advance_clock(staff, "1d")
        wait_for_reminder_job(workers, since)
        assert len(reminded()) == sent
    assert Order.objects.get(public_id=order_id).status == "payment_failed"
    advance_clock(staff, "1d")
    wait_for_order(order_id, "expired")
    assert reminded() == ["Reminder 1", "Reminder 2", "Reminder 3"]
    order_page = staff.get(f"/orders/{order_id}/").content.decode()
    assert order_page.count('<span class="status sent">sent</span>') == 3  # the visitor sees all three
    page = staff.get("/ops/").content.decode()
    assert page.count("(+1d from /ops/)") == 3 and "ahead of real time by 3 days, 2:00:00" in page, page


def test_a_monthly_renewal_after_moving_the_clock_to_the_next_billing_date(staff, workers, plans):
    subscription_id = sign_up(staff, key="renewing").json()["id"]
    subscription = wait_for_subscription(workers, subscription_id, "active")
    first_end = subscription.current_period_end

    advance_clock(staff, "next_billing")
    assert clock.today() == first_end
    staff.post("/ops/", {"bill_date": clock.today().isoformat()})  # the button's default date
    renewed = wait_for(
        lambda: Subscription.objects.filter(
            public_id=subscription_id, current_period_start=first_end
        ).first(),
        60,
        workers.logs,
    )
    assert renewed.status == "active" and renewed.current_period_end > first_end
    assert [pi["status"] for pi in intents_for(workers, subscription_id)] == ["succeeded", "succeeded"]
    ops = staff.get("/ops/").content.decode()  # the run's jobs drawn as the order pages draw theirs
    assert ">subscriptions.plan_billing_run</text>" in ops and ">subscriptions.bill_batch</text>" in ops


def test_the_clock_only_moves_forward_and_not_in_production(db, settings):
    with pytest.raises(CommandError, match="positive"):
        call_command("clock", "advance", "0s")
    with pytest.raises(CommandError, match="not a duration"):
        call_command("clock", "advance", "yesterday")
    settings.CLOCK_CAN_ADVANCE = False
    with pytest.raises(CommandError, match="cannot be moved"):
        call_command("clock", "advance", "1d")
    assert clock.offset().total_seconds() == 0
