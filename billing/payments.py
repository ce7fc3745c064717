"""Collecting an invoice exactly once (pattern 2, the idempotent charge), and refunds.

Charging is three steps, each committed on its own:
1. commit a PaymentAttempt (`open_attempts`: or find the one already in flight for this invoice);
2. call the gateway with the attempt's Idempotency-Key;
3. record the outcome (and let the owner of the invoice react) in one transaction.
A crash anywhere repeats from step 1, finds the same pending attempt, re-sends the same key and gets
the gateway's saved answer: one charge, recorded once. Whether the invoice's owner still wants a
payment, and what it does once one is recorded, is the owner's business (`billing/owners.py`).

`charge_invoice` takes one invoice through the three steps. A job with many (a billing batch) takes the
same steps in bulk, through the same functions: `open_attempts` for all of its invoices inside one
transaction it commits (`open_attempts_of_new_invoices` for those that transaction issued itself),
`send_attempts` for the calls, many in flight, and `record_outcomes` for each lot of answers. Each step
costs a few queries however many invoices it takes, not a few per invoice.
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
from jobkit.rows import update_rows

# A billing batch records its answers at most once a second, in one transaction each: against a gateway
# that answers at once, a batch's calls all come back within it, so the batch records once; at 25 calls
# a second, a lot of 25. Recording whatever had come back since the last lot took four transactions of
# seven statements per 100-charge batch (`make bench`, billing on PostgreSQL, 25,000 subscriptions, run
# alternately: 557 and 562 billed/s, against 600 and 642 with a lot a second). The price: a worker that
# dies re-sends up to a second's calls, which their keys make the gateway answer from its records.
RECORD_EVERY_SECONDS = 1.0


def charge_invoice(invoice_id: int, payment_method: str) -> PaymentAttempt | None:
    """Collect an invoice once; the owner hears of the outcome in the transaction that records it."""
    attempt = open_attempt(invoice_id, payment_method)
    if attempt is None or attempt.status != PaymentAttempt.Status.PENDING:
        return attempt  # already settled by an earlier run, or no longer wanted by the invoice's owner
    outcome = gateway.charge(charge_request(attempt))
    crash_point("after_gateway_charge")  # test hook: the gateway charged, nothing recorded yet
    return _recorded_one(attempt, outcome)


def open_attempt(invoice_id: int, payment_method: str) -> PaymentAttempt | None:
    """`open_attempts` for one invoice."""
    return open_attempts({invoice_id: payment_method}).get(invoice_id)


@transaction.atomic
def open_attempts(payment_methods: dict[int, str]) -> dict[int, PaymentAttempt]:
    """For each invoice (id -> the payment method to charge): its pending attempt (opened now, or the one
    in flight), or its settled one; no entry if it never had one and its owner wants no payment.
    Committed on return, or with the caller's transaction when called inside one (a billing batch
    commits all of its attempts at once). A few queries however many invoices: a whole batch."""
    invoices = list(Invoice.objects.select_for_update().filter(pk__in=payment_methods).order_by("pk"))
    if void := [invoice.number for invoice in invoices if invoice.status == Invoice.Status.VOID]:
        raise PermanentError(f"invoice {', '.join(void)} is void")
    latest: dict[int, PaymentAttempt] = {}  # per invoice: its succeeded, else pending, else latest attempt
    for attempt in PaymentAttempt.objects.filter(invoice__in=invoices).order_by("created_at", "pk"):
        current = latest.get(attempt.invoice_id)
        if current is None or _RANK[attempt.status] >= _RANK[current.status]:
            latest[attempt.invoice_id] = attempt
    unsettled = [invoice for invoice in invoices if invoice.status == Invoice.Status.OPEN]
    # A duplicate job that arrives after an attempt was settled (a decline, say) must not open a new
    # one: the owner is asked under the invoice locks, which recording an outcome also takes.
    wanted = owners.wanting_payment(invoice for invoice in unsettled if _needs_attempt(latest, invoice))
    latest.update(
        _create_attempts(
            {invoice: payment_methods[invoice.pk] for invoice in unsettled if invoice.pk in wanted}
        )
    )
    for invoice in invoices:
        if invoice.pk in latest:
            latest[invoice.pk].invoice = invoice  # what the call's metadata reads, without a query each
    return latest


def open_attempts_of_new_invoices(payment_methods: dict[Invoice, str]) -> dict[int, PaymentAttempt]:
    """`open_attempts` for invoices issued in the caller's transaction, which is still open: no other
    transaction can see them yet, so there is nothing to lock and no attempt to find, and their owner
    issued them to be paid. Skips the locking read and the two look-ups: a fifth of a billing batch's
    staging (stage_batch alone on PostgreSQL, 100-member batches: about 470 against 600 us a member)."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("open_attempts_of_new_invoices runs in the transaction that issued the invoices")
    return _create_attempts(payment_methods)


def _create_attempts(payment_methods: dict[Invoice, str]) -> dict[int, PaymentAttempt]:
    """A new pending attempt for each invoice, by invoice id."""
    attempts = PaymentAttempt.objects.bulk_create(
        PaymentAttempt(
            invoice=invoice, amount=invoice.amount, currency=invoice.currency, payment_method=payment_method
        )
        for invoice, payment_method in payment_methods.items()
    )
    return {attempt.invoice_id: attempt for attempt in attempts}


_RANK = {
    PaymentAttempt.Status.SUCCEEDED: 2,
    PaymentAttempt.Status.PENDING: 1,
    PaymentAttempt.Status.FAILED: 0,
}


def _needs_attempt(latest: dict[int, PaymentAttempt], invoice: Invoice) -> bool:
    """An open invoice with no pending attempt (a retry of one re-sends the same Idempotency-Key)."""
    attempt = latest.get(invoice.pk)
    return attempt is None or attempt.status != PaymentAttempt.Status.PENDING


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
    the breaker and the rate limiter, and yield the answers in lots, at most one a second
    (`call_concurrently`: the first failed call stops the rest and is raised once the answers in flight
    were yielded)."""
    prepared = {attempt.pk: charge_request(attempt) for attempt in attempts}  # in this thread: reads rows
    # Calls start only within half of what the soft time limit leaves after a call's timeout (20 s of
    # 60 - 20 by default); the other half is for recording. The rest go out in the job's next run.
    start_within = (settings.CELERY_TASK_SOFT_TIME_LIMIT - settings.STRIPE_TIMEOUT_SECONDS) / 2
    yield from call_concurrently(
        lambda attempt: gateway.charge(prepared[attempt.pk]),
        attempts,
        threads=settings.GATEWAY_CALLS_IN_FLIGHT,
        start_within=start_within,
        yield_every=RECORD_EVERY_SECONDS,
    )


@transaction.atomic
def record_outcomes(answered: Iterable[tuple[PaymentAttempt, gateway.ChargeOutcome]]) -> list[PaymentAttempt]:
    """Record the gateway's answers in one transaction, and tell the invoices' owners; returns the
    attempts, as recorded now or by a concurrent run first (a duplicate job, a webhook)."""
    outcomes = {attempt.pk: outcome for attempt, outcome in answered}
    # Locks each attempt and its invoice, as `open_attempts` locks the invoice: in id order, both.
    attempts = list(
        PaymentAttempt.objects.select_for_update()
        .select_related("invoice")
        .filter(pk__in=outcomes)
        .order_by("pk")
    )
    now = timezone.now()
    settled = []
    for attempt in attempts:
        if attempt.status != PaymentAttempt.Status.PENDING:
            continue  # a concurrent run recorded it first
        outcome = outcomes[attempt.pk]
        attempt.gateway_reference = outcome.payment_intent_id
        attempt.completed_at = now
        if outcome.succeeded:
            attempt.status = PaymentAttempt.Status.SUCCEEDED
            attempt.invoice.status, attempt.invoice.paid_at = Invoice.Status.PAID, now
        else:
            attempt.status = PaymentAttempt.Status.FAILED
            attempt.failure_code = fit(PaymentAttempt, "failure_code", outcome.failure_code)
            attempt.failure_message = fit(PaymentAttempt, "failure_message", outcome.failure_message)
        settled.append(attempt)
    update_rows(settled, ["status", "gateway_reference", "completed_at", "failure_code", "failure_message"])
    paid = [attempt.invoice_id for attempt in settled if attempt.status == PaymentAttempt.Status.SUCCEEDED]
    Invoice.objects.filter(pk__in=paid).update(status=Invoice.Status.PAID, paid_at=now)
    owners.payments_settled(settled)
    return attempts


def _recorded_one(attempt: PaymentAttempt, outcome: gateway.ChargeOutcome) -> PaymentAttempt:
    return record_outcomes([(attempt, outcome)])[0]


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
            invoice__in=Invoice.objects.filter(
                Invoice.numbered((intent.get("metadata") or {}).get("invoice_number", ""))
            ),
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
    return _recorded_one(attempt, outcome)


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
