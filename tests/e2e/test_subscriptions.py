"""Pattern 7: the compensated sign-up. Local records first, the idempotent charge, activation steps;
a step after the charge that fails for good is compensated by exactly one refund."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import connection, transaction
from django.test import Client

from billing.models import Invoice, PaymentAttempt, Refund
from jobkit.models import JobRun
from subscriptions import jobs
from subscriptions.models import Subscription
from tests.harness import jobs_idle, wait_for

pytestmark = pytest.mark.e2e


def sign_up(client, key: str | None = None, **overrides):
    body = {
        "email": "ada@example.com",
        "plan": "coffee-monthly",
        "payment_method": "pm_card_visa",
        **overrides,
    }
    headers = {"Idempotency-Key": key} if key else {}
    return client.post(
        "/api/subscriptions", data=json.dumps(body), content_type="application/json", headers=headers
    )


def wait_for_subscription(e2e, subscription_id: str, *statuses: str, timeout: float = 30) -> Subscription:
    def explain() -> str:
        sub = Subscription.objects.filter(public_id=subscription_id).first()
        runs = JobRun.objects.filter(subject=f"subscription:{subscription_id}")
        timeline = "\n".join(
            f"  {r.name:36} {r.status:9} attempts={r.attempts} {r.last_error[:160]!r}" for r in runs
        )
        return (
            f"subscription is {sub and (sub.status, sub.step, sub.status_reason)}\n{timeline}\n{e2e.logs()}"
        )

    return wait_for(
        lambda: Subscription.objects.filter(public_id=subscription_id, status__in=statuses).first(),
        timeout,
        explain,
    )


def intents_for(e2e, subscription_id: str) -> list[dict]:
    return [
        pi for pi in e2e.sandbox.payment_intents() if pi["metadata"].get("subscription_id") == subscription_id
    ]


def test_sign_up_charges_registers_and_welcomes_once(client, e2e, plans):
    created = sign_up(client, key="signup-ada-1")
    assert created.status_code == 202
    subscription_id = created.json()["id"]
    assert sign_up(client, key="signup-ada-1").json()["id"] == subscription_id  # same key: same subscription

    subscription = wait_for_subscription(e2e, subscription_id, "active")
    assert subscription.step == "done" and subscription.entitled_at is not None
    [intent] = intents_for(e2e, subscription_id)
    period = subscription.periods.get()
    invoice = period.invoice
    assert (intent["status"], intent["amount"]) == ("succeeded", 2400)
    assert intent["metadata"] == {"subscription_id": subscription_id, "invoice_number": invoice.number}
    assert [r["reference"] for r in e2e.sandbox.registrations()] == [subscription_id]
    wait_for(lambda: e2e.sandbox.mail_messages(), 30, e2e.logs)
    assert [m["subject"] for m in e2e.sandbox.mail_messages()] == ["Welcome to Coffee of the month"]

    detail = client.get(f"/api/subscriptions/{subscription_id}").json()
    assert detail["status"] == "active"
    assert detail["invoices"] == [
        {
            "number": invoice.number,
            "period": {"start": period.start.isoformat(), "end": period.end.isoformat()},
            "amount": "24.00",
            "status": "paid",
        }
    ]
    assert Subscription.objects.count() == 1


def test_activation_failing_after_the_charge_is_refunded_once(client, e2e, plans):
    e2e.sandbox.set_fault("carrier", reject_registrations=True)
    subscription_id = sign_up(client, key="signup-grace").json()["id"]
    subscription = wait_for_subscription(e2e, subscription_id, "failed")
    assert "refunded" in subscription.status_reason

    [intent] = intents_for(e2e, subscription_id)
    [refund] = e2e.sandbox.refunds()
    assert (refund["payment_intent"], refund["amount"]) == (intent["id"], intent["amount"])
    assert Refund.objects.get().status == "succeeded"
    assert (
        JobRun.objects.get(name="subscriptions.register_delivery").status == "dead"
    )  # a 422: no retry storm
    wait_for(lambda: e2e.sandbox.mail_messages(), 30, e2e.logs)
    assert [m["subject"] for m in e2e.sandbox.mail_messages()] == [
        "Your Coffee of the month sign-up was refunded"
    ]

    # Retrying the workflow, any way it can be retried, creates no second subscription, charge or refund.
    assert sign_up(client, key="signup-grace").json()["id"] == subscription_id
    for job in (jobs.charge_signup, jobs.register_delivery, jobs.compensate_signup):
        job.delay(subscription_id)
    wait_for(jobs_idle, 30, e2e.logs)
    assert Subscription.objects.count() == 1
    assert len(intents_for(e2e, subscription_id)) == 1
    assert len(e2e.sandbox.refunds()) == 1
    assert len(e2e.sandbox.mail_messages()) == 1
    assert Subscription.objects.get(public_id=subscription_id).status == "failed"


def test_declined_sign_up_fails_without_compensation(client, e2e, plans):
    subscription_id = sign_up(client, payment_method="pm_card_chargeDeclined").json()["id"]
    subscription = wait_for_subscription(e2e, subscription_id, "failed")
    assert "declined" in subscription.status_reason.lower()
    assert PaymentAttempt.objects.get(invoice__owner=subscription.subject).status == "failed"
    assert e2e.sandbox.refunds() == [] and e2e.sandbox.registrations() == []
    wait_for(lambda: e2e.sandbox.mail_messages(), 30, e2e.logs)
    assert [m["subject"] for m in e2e.sandbox.mail_messages()] == [
        "Your Coffee of the month sign-up did not go through"
    ]


@contextmanager
def inserts_held_back() -> Iterator[None]:
    """Until the block ends, inserts into the subscriptions table wait and reads do not, as while a long
    write holds the database: on SQLite the IMMEDIATE transaction takes the write lock at BEGIN; on
    PostgreSQL a SHARE lock on the table blocks inserts but not selects."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {Subscription._meta.db_table} IN SHARE MODE")
        yield


def test_two_concurrent_submits_of_the_subscribe_form_make_one_subscription(e2e, plans):
    """A double click: the same hidden request key twice, at once. Both requests get past any look-up
    before either inserts (held back behind another write), so only the unique key can decide."""
    form = {
        "email": "ada@example.com",
        "plan": "coffee-monthly",
        "payment_method": "pm_card_visa",
        "request_key": "double-click",
    }
    wants_to_write = [threading.Event(), threading.Event()]
    responses: list = [None, None]

    def submit(n: int) -> None:
        def observe(execute, sql, params, many, context):  # watches; changes nothing
            if not sql.lstrip().upper().startswith("SELECT"):
                wants_to_write[n].set()
            return execute(sql, params, many, context)

        try:
            with connection.execute_wrapper(observe):
                responses[n] = Client(raise_request_exception=False).post("/subscribe/", form)
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(2)]
    with inserts_held_back():
        for thread in threads:
            thread.start()
        for event in wants_to_write:
            assert event.wait(30), "a submit never reached its first write"
    for thread in threads:
        thread.join(60)

    assert [r.status_code for r in responses] == [302, 302]
    assert responses[0]["Location"] == responses[1]["Location"]
    subscription = Subscription.objects.get()
    assert responses[0]["Location"] == f"/subscriptions/{subscription.public_id}/"
    assert Invoice.objects.count() == 1
    subscription_id = str(subscription.public_id)
    wait_for_subscription(e2e, subscription_id, "active")
    assert JobRun.objects.filter(name="subscriptions.charge_signup").count() == 1
    assert len(intents_for(e2e, subscription_id)) == 1
