"""Stripe webhooks: verified first, stored once per event id, reconciled idempotently with the jobs.

Either side may learn of a payment first: the job that made the call, or the webhook. Both go through
billing.payments, which records an attempt's outcome only while it is still pending.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import stripe
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from billing import payments
from billing.models import StripeEvent
from jobkit.rows import insert_unless_taken

logger = logging.getLogger(__name__)

HANDLED = {"payment_intent.succeeded", "payment_intent.payment_failed", "charge.refunded"}


@csrf_exempt  # authenticated by the Stripe-Signature header instead
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    """Receive one Stripe event: 400 naming the problem (nothing stored) unless Stripe signed it recently."""
    header = request.headers.get("Stripe-Signature")
    if not header:
        return _rejected("Stripe-Signature", "The Stripe-Signature header is missing.")
    try:
        # The tolerance must be passed: without it the SDK accepts a captured request replayed years later.
        stripe.WebhookSignature.verify_header(
            request.body, header, settings.STRIPE_WEBHOOK_SECRET, stripe.Webhook.DEFAULT_TOLERANCE
        )
    except stripe.SignatureVerificationError as exc:
        # The SDK's reason is the useful part: unreadable header, no matching signature, or too old.
        return _rejected("Stripe-Signature", str(exc))
    except UnicodeDecodeError:  # the SDK decodes the body to compute the signature
        return _rejected("body", "The body is not UTF-8 text.")
    try:
        payload = json.loads(request.body)
    except ValueError:
        return _rejected("body", "The body is not JSON.")
    if _has_nul(payload):  # PostgreSQL stores no NUL in text or JSON
        return _rejected("body", "The event contains a NUL character, which no real Stripe event does.")
    if not _is_event(payload):
        # Checked here, not left to a KeyError later: a signed but malformed body is a 400, not a 500.
        return _rejected("body", "The body is not a Stripe event (id, type and data.object are required).")
    if payload["type"] in HANDLED and (
        problem := _object_problem(payload["type"], payload["data"]["object"])
    ):
        return _rejected("data.object", problem)
    with transaction.atomic():
        stored = StripeEvent(event_id=payload["id"], type=payload["type"], payload=payload)
        if not insert_unless_taken(stored):  # the unique event id is the whole dedup
            return JsonResponse({"received": True, "duplicate": True})
        answer: dict[str, Any] = {"received": True}
        if payload["type"] in HANDLED:
            try:
                handle(payload["type"], payload["data"]["object"])
            except payments.IntentMismatch as exc:
                # Stored, not applied, and answered 2xx: Stripe retries a non-2xx for days, and this signed
                # event would differ from the attempt the same way every time. The log line calls a human.
                logger.error("Stripe event %s (%s) not applied: %s", payload["id"], payload["type"], exc)
                answer["ignored"] = str(exc)
        StripeEvent.objects.filter(pk=stored.pk).update(processed_at=timezone.now())
    return JsonResponse(answer)


def handle(event_type: str, obj: dict[str, Any]) -> None:
    """Reconcile one handled event's object with what the jobs recorded (each call is idempotent)."""
    if event_type.startswith("payment_intent."):
        payments.reconcile_payment_intent(obj)
    elif event_type == "charge.refunded":
        payments.reconcile_refund(obj)


def _is_event(payload: Any) -> bool:
    return (
        isinstance(payload, dict)
        and isinstance(payload.get("id"), str)
        and isinstance(payload.get("type"), str)
        and isinstance(payload.get("data"), dict)
        and isinstance(payload["data"].get("object"), dict)
    )


# The fields reconciliation reads from a handled event's object, and their JSON types (None: may be null).
_OBJECT_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    "payment_intent": {"id": (str,), "status": (str,), "amount": (int,), "currency": (str,),
                       "metadata": (dict, type(None)), "last_payment_error": (dict, type(None))},
    "charge": {"payment_intent": (str,), "amount_refunded": (int,)},
}  # fmt: skip


def _object_problem(event_type: str, obj: dict[str, Any]) -> str | None:
    """What is wrong with a handled event's object, or None: a signed but odd event is a 400, not a 500."""
    kind = "charge" if event_type.startswith("charge.") else "payment_intent"
    for field, types in _OBJECT_FIELDS[kind].items():
        value = obj.get(field)
        if value is None and type(None) in types:
            continue
        if not isinstance(value, types) or isinstance(value, bool):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            return f"A {event_type} event's object needs {field!r} as {names}."
    # A PaymentIntent's reconciliation looks an invoice up by its metadata's number, which must be text
    # (the metadata is absent, null or a dict by now); a charge's reconciliation reads no metadata.
    if kind == "payment_intent" and not all(isinstance(v, str) for v in (obj.get("metadata") or {}).values()):
        return f"A {event_type} event's metadata holds strings only, as Stripe's does."
    return None


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


def _rejected(field: str, message: str) -> JsonResponse:
    return JsonResponse({"errors": {field: [message]}}, status=400)
