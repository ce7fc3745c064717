"""Subscription jobs: one per workflow step, each a thin call into a service.

A step that fails for good after the charge (a permanent carrier refusal, or retries exhausted) ends
dead, and the dead-job handler registered for it in `subscriptions/apps.py` starts the compensation.
"""

from __future__ import annotations

import datetime

from celery import shared_task

from jobkit import clock
from jobkit.tasks import JobTask
from subscriptions import emails, renewals, signup


@shared_task(base=JobTask, name="subscriptions.charge_signup", subject_kind="subscription")
def charge_signup(subscription_id: str) -> None:
    signup.charge_signup(subscription_id)


@shared_task(
    base=JobTask,
    name="subscriptions.register_delivery",
    subject_kind="subscription",
    max_retries=8,
)
def register_delivery(subscription_id: str) -> None:
    signup.register_delivery(subscription_id)


@shared_task(base=JobTask, name="subscriptions.grant_entitlement", subject_kind="subscription")
def grant_entitlement(subscription_id: str) -> None:
    signup.grant_entitlement(subscription_id)


@shared_task(
    base=JobTask, name="subscriptions.compensate_signup", subject_kind="subscription", max_retries=12
)
def compensate_signup(subscription_id: str) -> None:
    signup.compensate_signup(subscription_id)


@shared_task(base=JobTask, name="subscriptions.send_welcome", subject_kind="subscription", max_retries=10)
def send_welcome(subscription_id: str) -> None:
    signup.send_email(emails.WELCOME, subscription_id)


@shared_task(
    base=JobTask, name="subscriptions.send_signup_declined", subject_kind="subscription", max_retries=10
)
def send_signup_declined(subscription_id: str) -> None:
    signup.send_email(emails.DECLINED, subscription_id)


@shared_task(
    base=JobTask, name="subscriptions.send_signup_refunded", subject_kind="subscription", max_retries=10
)
def send_signup_refunded(subscription_id: str) -> None:
    signup.send_email(emails.REFUNDED, subscription_id)


# --- batch billing (pattern 4) ----------------------------------------------------------------------------
@shared_task(base=JobTask, name="subscriptions.start_billing_run", subject_kind="billing_date")
def start_billing_run(billing_date: str | None = None) -> int:
    """The daily beat entry; the date defaults to today. Starting a date twice joins its run."""
    day = datetime.date.fromisoformat(billing_date) if billing_date else clock.today()
    run, _ = renewals.start_run(day)
    return run.pk


@shared_task(base=JobTask, name="subscriptions.plan_billing_run", subject_kind="billing_run")
def plan_billing_run(run_id: int) -> None:
    renewals.plan_run(run_id)


@shared_task(
    base=JobTask,
    name="subscriptions.bill_batch",
    subject_kind="billing_batch",
    max_retries=5,
)
def bill_batch(batch_id: int) -> None:
    renewals.bill_batch(batch_id)
