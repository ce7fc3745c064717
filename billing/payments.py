"""Collecting an invoice exactly once (pattern 2, the idempotent charge), and refunds.

Charging is three steps, each committed on its own:
1. commit a PaymentAttempt (`open_attempt`: or find the one already in flight for this invoice);
2. call the gateway with the attempt's Idempotency-Key;
3. record the outcome (and let the owner of the invoice react) in one transaction.
A crash anywhere repeats from step 1, finds the same pending attempt, re-sends the same key and gets
the gateway's saved answer: one charge, recorded once. Whether the invoice's owner still wants a
payment, and what it does once one is recorded, is the owner's business (`billing/owners.py`).

`charge_invoice` takes one invoice through the three steps. A job with many (a billing batch) takes the
same steps in bulk: `open_attempt` for each invoice inside one transaction it commits, `send_attempts`
for the calls, many in flight, and `record_outcomes` for each lot of answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing import gateway, owners
from billing.models import Invoice, PaymentAttempt, Refund
from jobkit.crash import crash_point
from jobkit.errors import PermanentError
from jobkit.outside import call_concurrently, fit


def charge_invoice(invoice_id: int, payment_method: str) -> PaymentAttempt | None:
    """Collect an invoice once; the owner hears of the outcome in the transaction that records it."""
    attempt = open_attempt(invoice_id, payment_method)
    if attempt is None or attempt.status != PaymentAttempt.Status.PENDING:
        return attempt  # already settled by an earlier run, or no longer wanted by the invoice's owner
    outcome = gateway.charge(charge_request(attempt))
    crash_point("after_gateway_charge")  # test hook: the gateway charged, nothing recorded yet
    return _record_outcome(attempt.pk, outcome)


@transaction.atomic
def open_attempt(invoice_id: int, payment_method: str) -> PaymentAttempt | None:
    """The invoice's pending attempt (opened now, or the one in flight), or its settled one; None if it
    never had one and its owner wants no payment. Committed on return, or with the caller's transaction
    when called inside one (a billing batch commits all of its attempts at once)."""
    invoice = Invoice.objects.select_for_update().get(pk=invoice_id)
    if invoice.status == Invoice.Status.PAID:
        return invoice.attempts.get(status=PaymentAttempt.Status.SUCCEEDED)
    if invoice.status == Invoice.Status.VOID:
        raise PermanentError(f"invoice {invoice.number} is void")
    pending = invoice.attempts.filter(status=PaymentAttempt.Status.PENDING).first()
    if pending is not None:
        return pending  # a retry of the same attempt: same Idempotency-Key
    if not owners.wants_payment(invoice):
        # A duplicate job that arrives after an attempt was settled (a decline, say) must not open a new
        # one: read under the invoice lock, which recording an outcome also takes.
        return invoice.attempts.order_by("-created_at").first()
    return PaymentAttempt.objects.create(
        invoice=invoice, amount=invoice.amount, currency=invoice.currency, payment_method=payment_method
    )


def charge_request(attempt: PaymentAttempt) -> gateway.ChargeRequest:
    """What the gateway is sent for an attempt. Built where the database is at hand (it reads the
    invoice), so the call itself can run in any thread."""
    return gateway.ChargeRequest(
        amount_minor=attempt.amount_minor,
        currency=attempt.currency,
        payment_method=attempt.payment_method,
        idempotency_key=attempt.idempotency_key,
        metadata=attempt.invoice.payment_metadata(),
    )


def send_attempts(
    attempts: list[PaymentAttempt],
) -> Iterator[list[tuple[PaymentAttempt, gateway.ChargeOutcome]]]:
    """Send committed pending attempts to the gateway, GATEWAY_CALLS_IN_FLIGHT at a time, each through
    the breaker and the rate limiter, and yield the answers as they come back (`call_concurrently`:
    the first failed call stops the rest and is raised once the answers in flight were yielded)."""
    prepared = {attempt.pk: charge_request(attempt) for attempt in attempts}  # in this thread: reads rows
    # Calls start only within half of what the soft time limit leaves after a call's timeout (20 s of
    # 60 - 20 by default); the other half is for recording. The rest go out in the job's next run.
    start_within = (settings.CELERY_TASK_SOFT_TIME_LIMIT - settings.STRIPE_TIMEOUT_SECONDS) / 2
    yield from call_concurrently(
        lambda attempt: gateway.charge(prepared[attempt.pk]),
        attempts,
        threads=settings.GATEWAY_CALLS_IN_FLIGHT,
        start_within=start_within,
    )


@transaction.atomic
def record_outcomes(answered: Iterable[tuple[PaymentAttempt, gateway.ChargeOutcome]]) -> None:
    """Record a lot of answers in one transaction (each as `charge_invoice` records its one)."""
    for attempt, outcome in answered:
        _record_outcome(attempt.pk, outcome)


@transaction.atomic
def _record_outcome(attempt_id: int, outcome: gateway.ChargeOutcome) -> PaymentAttempt:
    attempt = PaymentAttempt.objects.select_for_update().select_related("invoice").get(pk=attempt_id)
    if attempt.status != PaymentAttempt.Status.PENDING:
        return attempt  # a concurrent run recorded it first
    now = timezone.now()
    attempt.gateway_reference = outcome.payment_intent_id
    attempt.completed_at = now
    if outcome.succeeded:
        attempt.status = PaymentAttempt.Status.SUCCEEDED
        Invoice.objects.filter(pk=attempt.invoice_id).update(status=Invoice.Status.PAID, paid_at=now)
    else:
        attempt.status = PaymentAttempt.Status.FAILED
        attempt.failure_code = fit(PaymentAttempt, "failure_code", outcome.failure_code)
        attempt.failure_message = fit(PaymentAttempt, "failure_message", outcome.failure_message)
    attempt.save()
    owners.payment_settled(attempt)
    return attempt


class IntentMismatch(Exception):
    """A PaymentIntent whose amount or currency is not its attempt's: its outcome is not recorded."""


def reconcile_payment_intent(intent: dict[str, Any]) -> PaymentAttempt | None:
    """Record a PaymentIntent's outcome reported by a webhook; a no-op if the job path recorded it first.

    Raises IntentMismatch, recording nothing, when the intent's amount or currency differs from the
    attempt's: that intent did not collect (or fail to collect) what the invoice asked for.
    """
    attempt = (
        PaymentAttempt.objects.filter(gateway_reference=intent["id"]).first()
        or PaymentAttempt.objects.filter(
            invoice__number=(intent.get("metadata") or {}).get("invoice_number"),
            status=PaymentAttempt.Status.PENDING,
        ).first()
    )
    if attempt is None or intent.get("status") not in {"succeeded", "requires_payment_method", "canceled"}:
        return None
    asked = (attempt.amount_minor, attempt.currency.lower())  # Stripe writes currencies in lower case
    got = (intent.get("amount"), intent.get("currency"))
    if got != asked:
        raise IntentMismatch(
            f"payment intent {intent['id']} is for {got[0]} {got[1]}, but payment attempt "
            f"{attempt.public_id} of invoice {attempt.invoice.number} is for {asked[0]} {asked[1]}"
        )
    error = intent.get("last_payment_error") or {}
    outcome = gateway.ChargeOutcome(
        succeeded=intent["status"] == "succeeded",
        payment_intent_id=intent["id"],
        failure_code=error.get("decline_code") or error.get("code") or "",
        failure_message=error.get("message") or "",
    )
    return _record_outcome(attempt.pk, outcome)


def refund_payment(attempt_id: int) -> Refund:
    """Give back a successful payment in full, once: the Refund row (and its key) is committed first."""
    with transaction.atomic():
        attempt = PaymentAttempt.objects.select_for_update().get(pk=attempt_id)
        if attempt.status != PaymentAttempt.Status.SUCCEEDED:
            raise PermanentError(f"attempt {attempt.public_id} has no payment to refund ({attempt.status})")
        refund, _ = Refund.objects.get_or_create(attempt=attempt, defaults={"amount": attempt.amount})
    if refund.status == Refund.Status.SUCCEEDED and refund.gateway_reference:
        return refund
    # Also when a charge.refunded webhook marked it done first: the same key replays the gateway's
    # refund, and its id is filled in.
    gateway_refund = gateway.refund(
        payment_intent_id=attempt.gateway_reference,
        amount_minor=attempt.amount_minor,
        idempotency_key=refund.idempotency_key,
    )
    crash_point("after_gateway_refund")  # test hook: the gateway refunded, nothing recorded yet
    Refund.objects.filter(pk=refund.pk, gateway_reference="").update(
        status=Refund.Status.SUCCEEDED, gateway_reference=gateway_refund, completed_at=timezone.now()
    )
    refund.refresh_from_db()
    return refund


def reconcile_refund(charge: dict[str, Any]) -> Refund | None:
    """A charge.refunded event: mark our pending refund for that payment done (the job may be slower)."""
    refund = Refund.objects.filter(
        attempt__gateway_reference=charge.get("payment_intent"), status=Refund.Status.PENDING
    ).first()
    if refund is None or charge.get("amount_refunded", 0) < refund.attempt.amount_minor:
        return None
    Refund.objects.filter(pk=refund.pk, status=Refund.Status.PENDING).update(
        status=Refund.Status.SUCCEEDED, completed_at=timezone.now()
    )
    return refund
