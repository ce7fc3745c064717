"""Orders in the browser: the order page goes live from `placed` to its end while a visitor watches it, and
staff break and mend things from /ops/."""

from __future__ import annotations

import datetime

import pytest

from tests.browser.pages import DECLINED_CARD, GOOD_CARD, buy, job_status, press, row, see, status
from tests.conftest import STANDARD_WORKER
from tests.harness import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

ORDER_JOBS = [
    "orders.reserve_stock",
    "orders.charge_order",
    "orders.store_invoice_pdf",
    "orders.send_order_confirmation",
    "orders.request_shipment",
    "orders.send_invoice_email",
]


def test_a_good_card_order_goes_live_to_completed(page, e2e, catalogue, screenshot):
    page.goto("/")
    earl_grey = page.locator(".card").filter(has_text="Earl Grey")
    see(earl_grey.locator(".price"), "8.50 EUR", e2e)
    see(earl_grey.locator(".muted"), "TEA-EARL · 50 in stock", e2e)
    buy(page, "ada@example.com", GOOD_CARD)

    see(status(page), "Completed", e2e)  # the page refreshed itself: nobody reloaded it
    see(page.locator("#live tr td:first-child").filter(has_text="orders."), ORDER_JOBS, e2e)
    for job in ORDER_JOBS:
        see(job_status(page, job), "succeeded", e2e)
    see(page.get_by_role("link", name="Download PDF"), "Download PDF", e2e)
    screenshot(page, "chained-workflow-completed")
    assert len(e2e.sandbox.mail_messages()) == 2 and len(e2e.sandbox.shipments()) == 1


def test_a_declined_card_then_paying_again_from_the_order_page(page, e2e, catalogue, screenshot):
    buy(page, "bob@example.com", DECLINED_CARD)
    see(status(page), "Payment Failed", e2e)
    see(page.locator("#live h1 + .muted"), "Your card was declined.", e2e)

    page.get_by_label("Payment method").select_option(label=GOOD_CARD)
    press(page, page.get_by_role("button", name="Pay 17.00 EUR"))
    see(status(page), "Completed", e2e)
    see(job_status(page, "orders.charge_order"), ["succeeded", "succeeded"], e2e)  # one per attempt
    reminders = page.locator("table").filter(has=page.get_by_role("columnheader", name="Handled"))
    see(reminders.locator(".status"), ["skipped", "skipped", "skipped"], e2e)  # paid: none goes out
    screenshot(page, "idempotency-paid-again", at=page.get_by_role("heading", name="Background jobs"))
    charges = sorted(pi["status"] for pi in e2e.sandbox.payment_intents())
    assert charges == ["requires_payment_method", "succeeded"], charges


def test_a_mail_outage_switched_on_from_ops_holds_back_only_the_emails(
    staff_page, e2e, catalogue, screenshot
):
    ops = staff_page
    mail_breaker = row(ops, "Failures in window", "mail").locator(".status")
    see(mail_breaker, "closed", e2e)
    press(ops, row(ops, "Outage", "mail").get_by_role("button", name="Start outage"))
    see(ops.locator(".flash"), "Sandbox mail: outage on.", e2e)
    end_outage = row(ops, "Outage", "mail").get_by_role("button", name="End outage").element_handle()

    order = ops.context.new_page()  # a second tab, as the same staff user
    buy(order, "cy@example.com", GOOD_CARD)
    see(status(order), "Paid", e2e)
    see(job_status(order, "orders.store_invoice_pdf"), "succeeded", e2e)
    see(job_status(order, "orders.request_shipment"), "succeeded", e2e)
    see(job_status(order, "orders.send_invoice_email"), "retrying", e2e)
    see(job_status(order, "orders.send_order_confirmation"), "retrying", e2e)
    screenshot(order, "single-responsibility-mail-outage")

    see(mail_breaker, "open", e2e)  # the ops tab refreshed itself too
    # in place (live.js): a button whose row did not change is still the element it was, so a click aimed
    # at it cannot land on one the refresh threw away
    assert end_outage.evaluate("button => button.isConnected"), "the refresh replaced an unchanged button"
    screenshot(ops, "circuit-breaker-open")
    press(ops, row(ops, "Outage", "mail").get_by_role("button", name="End outage"))
    see(ops.locator(".flash"), "Sandbox mail: outage off.", e2e)

    see(status(order), "Completed", e2e, timeout=60)
    see(mail_breaker, "closed", e2e)
    screenshot(ops, "circuit-breaker-closed-again")
    assert len(e2e.sandbox.mail_messages()) == 2  # each email once, however often it was tried


def test_a_worker_killed_right_after_the_charge_still_charges_once(page, workers, catalogue, screenshot):
    [standard] = workers.workers
    workers.stop_worker(standard)
    doomed, marker = workers.add_crashing_worker("after_gateway_charge")
    buy(page, "dee@example.com", GOOD_CARD)
    wait_for(lambda: not doomed.alive(), 30, workers.logs)
    assert marker.exists()  # it SIGKILLed itself at the crash point: charged, not recorded
    see(status(page), "Processing", workers)
    see(job_status(page, "orders.charge_order"), "started", workers)
    screenshot(page, "idempotency-worker-killed")

    workers.stop_worker(doomed)
    workers.add_worker(STANDARD_WORKER)  # the unacknowledged message comes back after the visibility timeout
    see(status(page), "Completed", workers, timeout=60)
    charge = page.locator("#live tr").filter(has_text="orders.charge_order")
    see(charge.locator("td").nth(3), "2", workers)  # attempts: the message was delivered twice
    screenshot(page, "idempotency-charged-once")
    assert [pi["status"] for pi in workers.sandbox.payment_intents()] == ["succeeded"]


def test_reminders_come_due_as_staff_move_the_shop_clock_a_day_at_a_time(
    staff_page, workers, catalogue, screenshot
):
    workers.add_beat("beat")  # looks for due reminders every half second; they are due at +24/48/72 h
    ops = staff_page
    order = ops.context.new_page()
    buy(order, "eve@example.com", DECLINED_CARD)
    see(status(order), "Payment Failed", workers)
    reminders = order.locator("table").filter(has=order.get_by_role("columnheader", name="Handled"))
    reminder_statuses = reminders.locator(".status")
    see(reminder_statuses, ["pending", "pending", "pending"], workers)
    shop_now = parse_minute(order.get_by_text("Due by the shop clock").inner_text().split("now ")[1][:16])
    due = [parse_minute(cell) for cell in reminders.locator("tr td:nth-child(2)").all_inner_texts()]
    # +24/48/72 h after the decline, which was a moment before the page was drawn (times to the minute)
    hour = datetime.timedelta(hours=1)
    assert [round((when - shop_now) / hour) for when in due] == [24, 48, 72], (shop_now, due)

    plus_a_day = ops.get_by_role("button", name="+1 day")
    press(ops, plus_a_day)
    see(reminder_statuses, ["sent", "pending", "pending"], workers)
    screenshot(
        order, "scheduled-jobs-first-reminder", at=order.get_by_role("heading", name="Payment reminders")
    )
    press(ops, plus_a_day)
    see(reminder_statuses, ["sent", "sent", "pending"], workers)
    see(status(order), "Payment Failed", workers)
    press(ops, plus_a_day)
    see(status(order), "Expired", workers)  # not paid after the final reminder
    see(reminder_statuses, ["sent", "sent", "sent"], workers)
    see(order.locator("#live h1 + .muted"), "Not paid after the final reminder.", workers)
    screenshot(order, "scheduled-jobs-expired")
    screenshot(ops, "scheduled-jobs-shop-clock", at=ops.get_by_role("heading", name="Shop clock"))
    subjects = sorted(m["subject"].split(":")[0] for m in workers.sandbox.mail_messages())
    assert subjects == ["Reminder 1", "Reminder 2", "Reminder 3"]


def parse_minute(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text.strip(), "%Y-%m-%d %H:%M")
