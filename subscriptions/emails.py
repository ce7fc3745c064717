"""The emails about a subscription. Each goes through the notifications ledger: at most once per kind."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.mail import EmailMessage
from django.urls import reverse

from notifications.models import Reminder
from subscriptions.models import Subscription

WELCOME = "subscription_welcome"
DECLINED = "subscription_declined"
REFUNDED = "subscription_refunded"
PAYMENT_REMINDER = "subscription_payment_reminder"


def _message(subject: str, lines: list[str], subscription: Subscription) -> EmailMessage:
    url = settings.SHOP_BASE_URL + reverse("subscription-page", args=[subscription.public_id])
    return EmailMessage(
        subject=subject, body="\n\n".join(["Hello,", *lines, f"Your subscription: {url}", "Job Shop"])
    )


def welcome(subscription: Subscription) -> EmailMessage:
    plan = subscription.plan
    return _message(
        f"Welcome to {plan.name}",
        [f"your {plan.name} subscription is active: {plan.price} {plan.currency} a month.",
         f"Your first box ships now; the next renewal is on {subscription.current_period_end:%Y-%m-%d}."],
        subscription,
    )  # fmt: skip


def declined(subscription: Subscription) -> EmailMessage:
    return _message(
        f"Your {subscription.plan.name} sign-up did not go through",
        [
            f"your card was declined ({subscription.status_reason}).",
            "Nothing was charged. You can sign up again.",
        ],
        subscription,
    )


def refunded(subscription: Subscription) -> EmailMessage:
    return _message(
        f"Your {subscription.plan.name} sign-up was refunded",
        ["we could not set up your deliveries after taking your payment, so we refunded it in full.",
         "We are sorry. You can sign up again at any time."],
        subscription,
    )  # fmt: skip


def payment_reminder(subscription: Subscription, reminder: Reminder) -> EmailMessage:
    last = " This is the last reminder: unpaid, the subscription ends." if reminder.final else ""
    return _message(
        f"Reminder {reminder.sequence}: your {subscription.plan.name} renewal is not paid",
        [f"we could not charge your card for this month ({subscription.status_reason}).{last}"],
        subscription,
    )


BUILDERS: dict[str, Callable[[Subscription], EmailMessage]] = {
    WELCOME: welcome,
    DECLINED: declined,
    REFUNDED: refunded,
}
