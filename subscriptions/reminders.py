"""A past-due subscription's payment reminders (pattern 5 is in `notifications/reminders.py`): registered
as the "subscription" reminder handler in `subscriptions/apps.py`."""

from __future__ import annotations

from functools import partial

from notifications import services as notifications
from notifications.models import Reminder
from subscriptions import emails
from subscriptions.models import Subscription

Status = Subscription.Status


def remind_past_due(subscription_id: str, reminder: Reminder) -> bool:
    """A due reminder for a past-due subscription; the final one cancels the subscription."""
    subscription = (
        Subscription.objects.select_for_update().select_related("plan").get(public_id=subscription_id)
    )
    if subscription.status != Status.PAST_DUE:
        return False
    notifications.send_once(
        f"{emails.PAYMENT_REMINDER}_{reminder.sequence}",
        subscription.subject,
        subscription.email,
        partial(emails.payment_reminder, subscription, reminder),
    )
    if reminder.final:
        subscription.status, subscription.status_reason = (
            Status.CANCELLED,
            "Not paid after the final reminder.",
        )
        subscription.save(update_fields=["status", "status_reason", "updated_at"])
    return True
