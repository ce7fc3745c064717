"""Reads for the subscription pages and the subscription API: what they show, never a write."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import reverse

from apikit.tools import get_by_public_id
from jobkit.selectors import Timeline, timeline
from subscriptions.models import Plan, Subscription


def plan_payload(plan: Plan) -> dict[str, Any]:
    return {"code": plan.code, "name": plan.name, "price": str(plan.price), "currency": plan.currency,
            "interval": plan.interval}  # fmt: skip


def subscription_url(request: HttpRequest, subscription: Subscription) -> str:
    return request.build_absolute_uri(reverse("subscription-page", args=[subscription.public_id]))


def subscription_payload(subscription: Subscription, request: HttpRequest) -> dict[str, Any]:
    return {
        "id": str(subscription.public_id),
        "status": subscription.status,
        "step": subscription.step,
        "status_reason": subscription.status_reason,
        "email": subscription.email,
        "plan": plan_payload(subscription.plan),
        "current_period": {
            "start": subscription.current_period_start.isoformat(),
            "end": subscription.current_period_end.isoformat(),
        },
        "cancel_at_period_end": subscription.cancel_at_period_end,
        "url": subscription_url(request, subscription),
        "invoices": [
            {
                "number": period.invoice.number,
                "period": {"start": period.start.isoformat(), "end": period.end.isoformat()},
                "amount": str(period.invoice.amount),
                "status": period.invoice.status,
            }
            for period in subscription.periods.select_related("invoice").order_by("start")
        ],
        "jobs": timeline(subscription.subject).as_dicts(),
    }


def get_subscription(subscription_id: str) -> Subscription:
    return get_by_public_id(Subscription.objects.select_related("plan"), subscription_id, "subscription")


def subscription_is_final(subscription: Subscription, jobs: Timeline) -> bool:
    """Nothing more will happen on its page by itself (the page stops refreshing)."""
    if subscription.status in (Subscription.Status.FAILED, Subscription.Status.CANCELLED):
        return True
    return subscription.status == Subscription.Status.ACTIVE and not jobs.busy
