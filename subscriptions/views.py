"""The subscribe page and subscription pages: thin views over subscriptions/signup.py and renewals.py
(writes) and subscriptions/selectors.py (reads)."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from jobkit import clock
from jobkit.selectors import timeline
from notifications.selectors import reminders_for
from subscriptions import renewals, signup
from subscriptions.forms import SignUpForm
from subscriptions.models import Plan
from subscriptions.selectors import get_subscription, subscription_is_final


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
    jobs = timeline(subscription.subject)
    context = {
        "subscription": subscription,
        "periods": subscription.periods.select_related("invoice").order_by("start"),
        "jobs": jobs.jobs,
        "dead_jobs": jobs.dead,
        "final": subscription_is_final(subscription, jobs),
        "reminders": reminders_for(subscription.subject),
        "shop_now": clock.now(),
    }
    return render(request, "subscriptions/subscription.html", context)
