"""Subscriptions in the browser: a sign-up going live to `active`, its renewal from /ops/, and a sign-up the
carrier refuses after the charge, refunded."""

from __future__ import annotations

import re

import pytest

from tests.browser.pages import GOOD_CARD, job_status, press, row, see, status

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def sign_up(page, email: str, plan: str = "Coffee of the month", card: str = GOOD_CARD) -> None:
    page.goto("/subscribe/")
    page.locator(".card").filter(has_text=plan).get_by_role("link", name="Choose").click()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Payment method").select_option(label=card)
    page.get_by_role("button", name="Subscribe").click()
    page.wait_for_url("**/subscriptions/*/")


def invoice_statuses(page):
    return (
        page.locator("table").filter(has=page.get_by_role("columnheader", name="Period")).locator(".status")
    )


def test_a_sign_up_goes_active_and_renews_at_the_next_billing_date(page, staff_page, e2e, plans, screenshot):
    sign_up(page, "ada@example.com")
    see(status(page), "Active", e2e)  # the page refreshed itself through the sign-up's steps
    see(invoice_statuses(page), ["paid"], e2e)
    for step in ("charge_signup", "register_delivery", "grant_entitlement"):
        see(job_status(page, f"subscriptions.{step}"), "succeeded", e2e)

    ops = staff_page
    move = ops.get_by_role("button", name="To the next billing date")
    billing_date = move.inner_text().split("(")[1].rstrip(")")  # the day the first period ends
    press(ops, move)
    moved = f"Shop clock moved forward to the next billing date {billing_date}: it is now {billing_date} "
    see(ops.locator(".flash"), re.compile(f"^{moved}"), e2e)
    bill = ops.get_by_role("button", name="Bill subscriptions due on this date")
    press(ops, bill)
    run, billed_once = row(ops, "Batches", billing_date), [billing_date, "done", "", "1/1", "1", "0", "24.00"]
    see(run.locator("td"), billed_once, e2e)
    press(ops, bill)  # the same date again: the same run, nobody billed twice
    see(ops.locator(".flash"), f"Joined the billing run for {billing_date}.", e2e)
    see(run.locator("td"), billed_once, e2e)
    screenshot(ops, "batch-billing-run", at=ops.get_by_role("heading", name="Shop clock"))

    page.reload()
    see(invoice_statuses(page), ["paid", "paid"], e2e)
    screenshot(page, "batch-billing-renewed")
    assert [pi["status"] for pi in e2e.sandbox.payment_intents()] == ["succeeded", "succeeded"]


def test_a_sign_up_the_carrier_refuses_after_the_charge_is_refunded(page, e2e, plans, screenshot):
    e2e.sandbox.set_fault("carrier", reject_registrations=True)
    sign_up(page, "bob@example.com")
    see(status(page), "Failed", e2e)
    see(page.locator("#live h1 + .muted"), "Activation failed after payment; the payment was refunded.", e2e)
    see(job_status(page, "subscriptions.register_delivery"), "dead", e2e)  # a 422: no retry
    see(job_status(page, "subscriptions.compensate_signup"), "succeeded", e2e)
    screenshot(page, "compensated-workflow-refunded")
    [intent] = e2e.sandbox.payment_intents()
    [refund] = e2e.sandbox.refunds()
    assert (refund["payment_intent"], refund["amount"]) == (intent["id"], intent["amount"])
