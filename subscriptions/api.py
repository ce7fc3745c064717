"""The plan and subscription operations of the JSON API (mounted under /api/ by shop/api.py)."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from django.http import HttpRequest
from ninja import Field, Router, Status

from apikit.tools import (
    Accepted,
    ApiError,
    Email,
    Errors,
    IdempotencyKey,
    In,
    Job,
    Out,
    bind_json,
    idempotent_create,
    json_object,
    json_request_body,
)
from billing.forms import PaymentMethod
from subscriptions import signup
from subscriptions.forms import SignUpForm
from subscriptions.models import Plan, Subscription
from subscriptions.selectors import get_subscription, plan_payload, subscription_payload, subscription_url

router = Router(tags=["subscriptions"])


class SubscriptionIn(In):
    """Documentation only: SignUpForm decides (see apikit/tools.py)."""

    email: Email
    plan: str = Field(description="A plan's code, from GET /api/plans.", examples=["tea-monthly"])
    payment_method: PaymentMethod


class PlanOut(Out):
    code: str
    name: str
    price: str = Field(description='A decimal in a string, e.g. "19.00".')
    currency: str
    interval: str


class PeriodOut(Out):
    start: str
    end: str


class SubscriptionInvoiceOut(Out):
    number: str
    period: PeriodOut
    amount: str
    status: str


class SubscriptionOut(Out):
    id: str
    status: str
    step: str = Field(description=f"The sign-up step reached: {', '.join(Subscription.Step.values)}.")
    status_reason: str
    email: str
    plan: PlanOut
    current_period: PeriodOut
    cancel_at_period_end: bool
    url: str = Field(description="The subscription's page, with its live job timeline.")
    invoices: list[SubscriptionInvoiceOut]
    jobs: list[Job]


SUBSCRIPTION_LINKS = {
    "GetSubscription": {
        "operationId": "getSubscription",
        "parameters": {"subscription_id": "$response.body#/id"},
    }
}


@router.get("/plans", response=list[PlanOut], operation_id="listPlans")
def list_plans(request: HttpRequest) -> list[dict[str, Any]]:
    return [plan_payload(p) for p in Plan.objects.filter(active=True)]


@router.post(
    "/subscriptions",
    response={202: Accepted, (400, 409, 413, 415, 422): Errors},
    operation_id="createSubscription",
    openapi_extra={**json_request_body(SubscriptionIn), "responses": {202: {"links": SUBSCRIPTION_LINKS}}},
)
def create_subscription(request: HttpRequest, idempotency_key: IdempotencyKey = None) -> Status:
    """Sign up: the subscription and its first invoice are committed, then the charge, the delivery
    registration and the entitlement run as background jobs (a failure after the charge is refunded)."""
    body = json_object(request)
    # The sign-up's own unique request key (a retried request can never create a second subscription),
    # hashed from the Idempotency-Key: "api:" + a 255-character key would not fit its column.
    key = hashlib.sha256(idempotency_key.encode()).hexdigest() if idempotency_key else uuid.uuid4()
    request_key = f"api:{key}"
    subscription = idempotent_create(
        idempotency_key, Subscription.objects, body, lambda: sign_up_from(body, request_key)
    )
    payload = {
        "id": str(subscription.public_id),
        "status": subscription.status,
        "url": subscription_url(request, subscription),
    }
    return Status(202, payload)


def sign_up_from(body: dict[str, Any], request_key: str) -> Subscription:
    form, errors = bind_json(body, SignUpForm)
    if errors:
        raise ApiError(errors)
    return signup.sign_up(request_key=request_key, **form.cleaned_data)


@router.get(
    "/subscriptions/{subscription_id}",
    response={200: SubscriptionOut, 404: Errors},
    operation_id="getSubscription",
)
def get_subscription_detail(request: HttpRequest, subscription_id: str) -> dict[str, Any]:
    """Status, sign-up step, current period, invoices and the subscription's job timeline."""
    return subscription_payload(get_subscription(subscription_id), request)
