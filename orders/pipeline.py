"""The paid order's pipeline: patterns 1 (single-responsibility jobs) and 3 (a chained workflow).

    paid --on commit--> store_invoice_pdf --on commit--> send_invoice_email
                        send_order_confirmation
                        request_shipment
    each follow-up ends with complete_if_done(): `completed` once all four effects are in the database

Each follow-up is its own job on its own queue with the retry policy its failures need, so a mail outage
holds back neither the PDF nor the shipment. Each is idempotent (a stored PDF is not rendered again, the
email ledger sends once, the carrier's Idempotency-Key and a unique row ship once), and each hand-off
happens only after the step's own commit.
"""

from __future__ import annotations

from functools import partial

from django.db.models import CharField, Exists, OuterRef, QuerySet
from django.utils import timezone

from billing.invoices import store_pdf
from billing.models import Invoice
from jobkit.enqueue import enqueue_all_on_commit, enqueue_on_commit
from jobkit.prepared import Arg, PreparedSelect, PreparedUpdate
from notifications import services as notifications
from orders import emails
from orders.models import Order
from shipping import services as shipping


def fan_out(order_id: str) -> None:
    """A paid order's independent follow-ups, each its own job, sent when the payment's record commits."""
    from orders import jobs  # jobs import this module; keep the cycle out of module import time

    follow_ups = (jobs.store_invoice_pdf, jobs.send_order_confirmation, jobs.request_shipment)
    enqueue_all_on_commit([(job, (order_id,)) for job in follow_ups])


def store_invoice_pdf(order_id: str) -> None:
    """Store the invoice PDF, then hand over to the invoice email (also when the PDF already existed,
    so a crash between the two is healed by the redelivered job; the email ledger prevents a resend)."""
    from orders import jobs

    order = Order.objects.get(public_id=order_id)
    store_pdf(order.invoice_id)
    enqueue_on_commit(jobs.send_invoice_email, order_id)


def send_invoice_email(order_id: str) -> None:
    order = Order.objects.select_related("invoice").get(public_id=order_id)
    notifications.send_once(
        emails.INVOICE, order.subject, order.email, partial(emails.invoice, order.invoice)
    )
    complete_if_done(order_id)


def send_order_confirmation(order_id: str) -> None:
    order = Order.objects.get(public_id=order_id)
    notifications.send_once(
        emails.CONFIRMATION, order.subject, order.email, partial(emails.confirmation, order)
    )
    complete_if_done(order_id)


def request_shipment(order_id: str) -> None:
    order = Order.objects.prefetch_related("lines").get(public_id=order_id)
    items = [{"sku": line.sku, "quantity": line.quantity} for line in order.lines.all()]
    shipping.request_shipment(order_id, f"c/o {order.email}", items)
    complete_if_done(order_id)


def complete_if_done(order_id: str) -> None:
    """`completed` once every follow-up of a paid order is done, decided by the database alone.

    Each follow-up job calls this after committing its own effect, so whichever finishes last sees all
    of them; no chord, no counter to keep in step. It is one conditional UPDATE, which moves the order
    on from `paid` (and from nothing else) only where every effect is in the database: the last
    finisher's statement starts after the others' effects committed, so it sees them; two last
    finishers, or a refund at the same moment, cannot both move the order; no row is locked before.
    """
    _complete(order_id=order_id, subject=Order.subject_of(order_id), now=timezone.now())


def missing_follow_ups(order_id: str) -> list[str]:
    """Which of a paid order's follow-up jobs have no effect in the database yet, in one query. The
    invoice email is the PDF job's hand-off: while the PDF is missing, only the PDF job is named."""
    [done] = _effects_done(order_id=order_id, subject=Order.subject_of(order_id))
    missing = [job for job, is_done in zip(FOLLOW_UP_JOBS, done, strict=True) if not is_done]
    if "store_invoice_pdf" in missing and "send_invoice_email" in missing:
        missing.remove("send_invoice_email")
    return missing


FOLLOW_UP_JOBS = ("store_invoice_pdf", "send_invoice_email", "send_order_confirmation", "request_shipment")


def follow_up_effects() -> dict[str, Exists]:
    """Each follow-up job's effect as a condition on the order's row: the one definition of "done" that
    completion and the recovery sweep both read. Prepared (`jobkit/prepared.py`): the order's id and
    ledger subject are arguments given when the statement runs."""
    subject = Arg("subject", CharField())
    return {
        "store_invoice_pdf": Exists(Invoice.objects.filter(pk=OuterRef("invoice_id")).exclude(pdf="")),
        "send_invoice_email": Exists(notifications.sent(emails.INVOICE, subject)),
        "send_order_confirmation": Exists(notifications.sent(emails.CONFIRMATION, subject)),
        "request_shipment": Exists(shipping.shipments_for(Arg("order_id", CharField()))),
    }


def _this_order() -> QuerySet[Order]:
    return Order.objects.filter(public_id=Arg("order_id", Order._meta.get_field("public_id")))


# Three follow-ups run the completion per order: built by Django once, not at each call (5 ms of CPU).
_complete = PreparedUpdate(
    lambda: _this_order().filter(*follow_up_effects().values(), status=Order.Status.PAID),
    status=Order.Status.COMPLETED,
    updated_at=Arg("now", Order._meta.get_field("updated_at")),
)
_effects_done = PreparedSelect(
    lambda: _this_order().annotate(**follow_up_effects()).values_list(*FOLLOW_UP_JOBS)
)
