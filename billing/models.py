from __future__ import annotations

import datetime
import re
import uuid
from decimal import Decimal

from django.db import models

# An invoice number as `Invoice.number` writes it, of a year 1900-2999 and an id of up to 18 digits
# (what a bigint holds).
_NUMBER = re.compile(r"INV-(?P<year>(?:19|2\d)\d\d)-(?P<id>\d{7,18})")


class Invoice(models.Model):
    """A bill for something billing does not know: its owner ("order:<id>", "subscription:<id>") says what.

    Billing never imports its owners. An owner registers, in `billing.owners`, what it does when one of
    its invoices is paid or declined, and whether it still wants a payment.
    """

    class Status(models.TextChoices):
        OPEN = "open"
        PAID = "paid"
        VOID = "void"

    # No index: nothing looks invoices up by owner (an owner keeps its invoices' ids).
    owner = models.CharField(max_length=80, help_text="kind:id of what the invoice bills")
    email = models.EmailField()
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    paid_at = models.DateTimeField(null=True, blank=True)
    pdf = models.FileField(upload_to="invoices/", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="invoice_amount_positive")
        ]

    def __str__(self) -> str:
        return f"{self.number} ({self.status})"

    @property
    def number(self) -> str:
        """The year of issue and the row id ("INV-2026-0001234"); "" before the row exists. Derived, not
        stored: nothing to write after the insert, nothing to fall out of step, unique as the id is."""
        return f"INV-{self.created_at:%Y}-{self.pk:07d}" if self.pk else ""

    @classmethod
    def numbered(cls, number: str) -> models.Q:
        """A filter for the invoice with this number; for none if it is not one of ours."""
        match = _NUMBER.fullmatch(number or "")
        if match is None:
            return models.Q(pk__in=[])
        year = int(match["year"])
        start, end = (datetime.datetime(y, 1, 1, tzinfo=datetime.UTC) for y in (year, year + 1))
        return models.Q(pk=int(match["id"]), created_at__gte=start, created_at__lt=end)

    @property
    def owner_kind(self) -> str:
        return self.owner.split(":", 1)[0]

    @property
    def owner_id(self) -> str:
        return self.owner.split(":", 1)[1]

    def payment_metadata(self) -> dict[str, str]:
        """What every PaymentIntent for this invoice carries, so the gateway side can be traced back."""
        return {"invoice_number": self.number, f"{self.owner_kind}_id": self.owner_id}


class InvoiceLine(models.Model):
    invoice = models.ForeignKey(Invoice, related_name="lines", on_delete=models.CASCADE)
    description = models.CharField(max_length=200)
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)
    quantity = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.description}"

    @property
    def line_total(self) -> Decimal:
        return self.unit_price * self.quantity


class PaymentAttempt(models.Model):
    """One try at collecting an invoice, committed before the gateway is called.

    Its public id is the gateway Idempotency-Key: every retry of the same attempt (after a timeout,
    a dropped connection, a killed worker) re-sends the same key and gets the gateway's saved answer
    instead of a second charge. A new card or a later retry by the customer is a new attempt.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    invoice = models.ForeignKey(Invoice, related_name="attempts", on_delete=models.PROTECT)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    payment_method = models.CharField(max_length=255)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    gateway_reference = models.CharField(max_length=255, blank=True, help_text="PaymentIntent id")
    failure_code = models.CharField(max_length=64, blank=True)
    failure_message = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            # At most one attempt in flight and at most one success per invoice, enforced by the database.
            models.UniqueConstraint(
                fields=["invoice"],
                condition=models.Q(status="pending"),
                name="one_pending_attempt_per_invoice",
            ),
            models.UniqueConstraint(
                fields=["invoice"],
                condition=models.Q(status="succeeded"),
                name="one_successful_attempt_per_invoice",
            ),
        ]

    def __str__(self) -> str:
        return f"attempt {self.public_id} on {self.invoice_id} ({self.status})"

    @property
    def idempotency_key(self) -> str:
        return f"payment-attempt-{self.public_id}"

    @property
    def amount_minor(self) -> int:
        """Amount in the currency's minor unit, as payment gateways expect it."""
        return int((self.amount * Decimal(100)).to_integral_value())


class Refund(models.Model):
    """Giving back a successful payment (compensation). Its public id is the gateway Idempotency-Key."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    attempt = models.OneToOneField(PaymentAttempt, related_name="refund", on_delete=models.PROTECT)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    gateway_reference = models.CharField(max_length=255, blank=True, help_text="Refund id")
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"refund of {self.attempt} ({self.status})"

    @property
    def idempotency_key(self) -> str:
        return f"refund-{self.public_id}"


class StripeEvent(models.Model):
    """A webhook event, stored once (its id is unique) after its signature was verified."""

    event_id = models.CharField(max_length=255)
    type = models.CharField(max_length=64)
    payload = models.JSONField()
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]
        # A constraint rather than unique=True, which on PostgreSQL adds an index for LIKE no query needs.
        constraints = [models.UniqueConstraint(fields=["event_id"], name="stripeevent_event_id_unique")]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"
