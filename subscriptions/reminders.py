"""A past-due subscription's payment reminders (pattern 5 is in `notifications/reminders.py`): registered
as the "subscription" reminder handler in `subscriptions/apps.py`."""

from __future__ import annotations

from functools import partial

from django.utils import timezone

from notifications.models import Reminder
from notifications.services import MessageBuilder
from subscriptions import emails
from subscriptions.models import Subscription

email_kind = emails.PAYMENT_REMINDER


def reminder_for(subscription_id: str, reminder: Reminder) -> tuple[str, MessageBuilder] | None:
    subscription = (
        Subscription.objects.select_for_update().select_related("plan").get(public_id=subscription_id)
    )
    if subscription.status != Subscription.Status.PAST_DUE:
        return None  # paid since, or cancelled
    return subscription.email, partial(emails.payment_reminder, subscription, reminder)


def give_up(subscription_id: str) -> bool:
    """Unpaid after the final reminder: the subscription is cancelled."""
    cancelled = Subscription.objects.filter(
        public_id=subscription_id, status=Subscription.Status.PAST_DUE
    ).update(
        status=Subscription.Status.CANCELLED,
        status_reason="Not paid after the final reminder.",
        updated_at=timezone.now(),
    )
    return cancelled == 1
