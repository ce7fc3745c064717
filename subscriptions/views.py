"""The subscribe page, subscription pages, and the payloads and lookups the JSON API
(subscriptions/api.py) shares with them."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from jobkit.models import JobRun
from subscriptions import renewals, signup
from subscriptions.forms import SignUpForm
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
        "jobs": [run.as_dict() for run in JobRun.objects.filter(subject=subscription.subject)],
    }


def get_subscription(subscription_id: str) -> Subscription:
    try:
        return Subscription.objects.select_related("plan").get(public_id=subscription_id)
    except (Subscription.DoesNotExist, ValidationError) as exc:
        raise Http404("No such subscription.") from exc


@require_http_methods(["GET", "POST"])
def subscribe(request: HttpRequest) -> HttpResponse:
    """The sign-up form. Its hidden request key makes a double submit one subscription, not two."""
    form = SignUpForm(request.POST or None, initial={"plan": request.GET.get("plan")})
    if request.method == "POST" and form.is_valid():
        request_key = f"form:{request.POST.get('request_key') or uuid.uuid4()}"
        subscription = signup.sign_up_once(request_key=request_key, **form.cleaned_data)
        return redirect("subscription-page", subscription_id=subscription.public_id)
    context = {"form": form, "plans": Plan.objects.filter(active=True), "request_key": uuid.uuid4()}
    return render(request, "subscriptions/subscribe.html", context, status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
def subscription_page(request: HttpRequest, subscription_id: str) -> HttpResponse:
    subscription = get_subscription(subscription_id)
    if request.method == "POST":
        try:
            renewals.cancel_at_period_end(subscription_id)
            messages.success(request, "Your subscription ends at the end of this period.")
        except renewals.NotCancellable as exc:
            messages.error(request, str(exc))
        return redirect("subscription-page", subscription_id=subscription.public_id)
    jobs = list(JobRun.objects.filter(subject=subscription.subject))
    final = subscription.status in (Subscription.Status.FAILED, Subscription.Status.CANCELLED) or (
        subscription.status == Subscription.Status.ACTIVE
        and not any(j.status in JobRun.LIVE_STATUSES for j in jobs)
    )
    context = {
        "subscription": subscription,
        "periods": subscription.periods.select_related("invoice").order_by("start"),
        "jobs": jobs,
        "dead_jobs": [job for job in jobs if job.status == JobRun.Status.DEAD],
        "final": final,
    }
    return render(request, "subscriptions/subscription.html", context)
