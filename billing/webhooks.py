"""Stripe webhooks: verified first, stored once per event id, reconciled idempotently with the jobs.

Either side may learn of a payment first: the job that made the call, or the webhook. Both go through
billing.services, which records an attempt's outcome only while it is still pending.
"""

from __future__ import annotations

from typing import Any

import stripe
from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from billing import services
from billing.models import StripeEvent

HANDLED = {"payment_intent.succeeded", "payment_intent.payment_failed", "charge.refunded"}


@csrf_exempt  # authenticated by the Stripe-Signature header instead
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    try:
        event = stripe.Webhook.construct_event(
            request.body, request.headers.get("Stripe-Signature", ""), settings.STRIPE_WEBHOOK_SECRET
        )
    except ValueError:
        return JsonResponse({"errors": {"body": ["Not a JSON event."]}}, status=400)
    except stripe.SignatureVerificationError:
        return JsonResponse({"errors": {"Stripe-Signature": ["Missing or invalid signature."]}}, status=400)
    payload: dict[str, Any] = event.to_dict()
    with transaction.atomic():
        try:
            with transaction.atomic():  # a savepoint: the unique event id is the whole dedup
                stored = StripeEvent.objects.create(event_id=event.id, type=event.type, payload=payload)
        except IntegrityError:
            return JsonResponse({"received": True, "duplicate": True})
        if event.type in HANDLED:
            handle(event.type, payload["data"]["object"])
        StripeEvent.objects.filter(pk=stored.pk).update(processed_at=timezone.now())
    return JsonResponse({"received": True})


def handle(event_type: str, obj: dict[str, Any]) -> None:
    if event_type.startswith("payment_intent."):
        services.reconcile_payment_intent(obj)
    elif event_type == "charge.refunded":
        services.reconcile_refund(obj)
