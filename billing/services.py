"""Billing operations: issue invoices and collect them exactly once (pattern 2, idempotent charge).

Charging is three steps, each committed on its own:
1. commit a PaymentAttempt (or find the one already in flight for this invoice);
2. call the gateway with the attempt's Idempotency-Key;
3. record the outcome (and let the owner of the invoice react) in one transaction.
A crash anywhere repeats from step 1, finds the same pending attempt, re-sends the same key and gets
the gateway's saved answer: one charge, recorded once.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from billing import documents, gateway
from billing.models import Invoice, PaymentAttempt, Refund
from jobkit.crash import crash_point
from jobkit.errors import PermanentError
from jobkit.outside import fit
from orders.models import Order

SettledCallback = Callable[[PaymentAttempt], None]


def issue_order_invoice(order: Order) -> Invoice:
    """Create the invoice for a new order (call inside the checkout transaction)."""
    invoice = Invoice.objects.create(
        order=order, email=order.email, amount=order.total, currency=order.currency
    )
    number_invoice(invoice)
    return invoice


def number_invoice(invoice: Invoice) -> None:
    """Give a new invoice its number, from its row id, in the transaction that created it."""
    invoice.number = f"INV-{invoice.created_at:%Y}-{invoice.pk:07d}"
    Invoice.objects.filter(pk=invoice.pk).update(number=invoice.number)


def charge_invoice(
    invoice_id: int, payment_method: str, on_settled: SettledCallback | None = None
) -> PaymentAttempt:
    """Collect an invoice once. `on_settled` runs in the transaction that records the outcome."""
    attempt = _open_attempt(invoice_id, payment_method)
    if attempt is None or attempt.status != PaymentAttempt.Status.PENDING:
        return attempt  # already settled by an earlier run, or no longer wanted by the invoice's owner
    outcome = gateway.charge(
        amount_minor=attempt.amount_minor,
        currency=attempt.currency,
        payment_method=attempt.payment_method,
        idempotency_key=attempt.idempotency_key,
        metadata=attempt.invoice.payment_metadata(),
    )
    crash_point("after_gateway_charge")  # test hook: the gateway charged, nothing recorded yet
    return _record_outcome(attempt.pk, outcome, settle_callback_for(attempt.invoice))


@transaction.atomic
def _open_attempt(invoice_id: int, payment_method: str) -> PaymentAttempt | None:
    invoice = Invoice.objects.select_for_update().get(pk=invoice_id)
    if invoice.status == Invoice.Status.PAID:
        return invoice.attempts.get(status=PaymentAttempt.Status.SUCCEEDED)
    if invoice.status == Invoice.Status.VOID:
        raise PermanentError(f"invoice {invoice.number} is void")
    pending = invoice.attempts.filter(status=PaymentAttempt.Status.PENDING).first()
    if pending is not None:
        return pending  # a retry of the same attempt: same Idempotency-Key
    if not owner_wants_payment(invoice):
        # A duplicate job that arrives after an attempt was settled (a decline, say) must not open a new
        # one: read under the invoice lock, which recording an outcome also takes.
        return invoice.attempts.order_by("-created_at").first()
    return PaymentAttempt.objects.create(
        invoice=invoice, amount=invoice.amount, currency=invoice.currency, payment_method=payment_method
    )


@transaction.atomic
def _record_outcome(
    attempt_id: int, outcome: gateway.ChargeOutcome, on_settled: SettledCallback
) -> PaymentAttempt:
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
    on_settled(attempt)
    return attempt


def store_invoice_pdf(invoice_id: int) -> bool:
    """Render and store the invoice PDF once; False when it already exists (a repeated job)."""
    invoice = Invoice.objects.select_related("order").get(pk=invoice_id)
    if invoice.pdf:
        return False
    pdf = documents.render_invoice_pdf(invoice)
    name = f"invoices/{invoice.number}.pdf"
    # A crash after saving the file but before the row update leaves a file behind: overwrite it, so the
    # stored name stays the invoice number instead of the storage's "_abc123" de-duplicated variant.
    if default_storage.exists(name):
        default_storage.delete(name)
    stored = default_storage.save(name, ContentFile(pdf))
    return bool(Invoice.objects.filter(pk=invoice_id, pdf="").update(pdf=stored))


def owner_wants_payment(invoice: Invoice) -> bool:
    """Whether the invoice's owner is still waiting for this payment (it may have moved on)."""
    if invoice.order_id:
        from orders.services import order_wants_payment

        return order_wants_payment(invoice.order_id)
    from subscriptions.services import subscription_wants_payment

    return subscription_wants_payment(invoice.subscription_id, invoice)


def settle_callback_for(invoice: Invoice) -> SettledCallback:
    """What the invoice's owner does when a payment for it is recorded (order or subscription)."""
    if invoice.order_id:
        from orders.services import settle_order_payment

        return partial(settle_order_payment, invoice.order_id)
    from subscriptions.services import settle_subscription_payment

    return partial(settle_subscription_payment, invoice.subscription_id)


def reconcile_payment_intent(intent: dict[str, Any]) -> PaymentAttempt | None:
    """Record a PaymentIntent's outcome reported by a webhook; a no-op if the job path recorded it first."""
    attempt = (
        PaymentAttempt.objects.filter(gateway_reference=intent["id"]).first()
        or PaymentAttempt.objects.filter(
            invoice__number=(intent.get("metadata") or {}).get("invoice_number"),
            status=PaymentAttempt.Status.PENDING,
        ).first()
    )
    if attempt is None or intent.get("status") not in {"succeeded", "requires_payment_method", "canceled"}:
        return None
    error = intent.get("last_payment_error") or {}
    outcome = gateway.ChargeOutcome(
        succeeded=intent["status"] == "succeeded",
        payment_intent_id=intent["id"],
        failure_code=error.get("decline_code") or error.get("code") or "",
        failure_message=error.get("message") or "",
    )
    return _record_outcome(attempt.pk, outcome, settle_callback_for(attempt.invoice))


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
