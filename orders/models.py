from __future__ import annotations

import uuid
from decimal import Decimal

from django.db import models
from django.utils import timezone


class Product(models.Model):
    sku = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3, default="EUR")
    stock = models.PositiveIntegerField(default=0)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.CheckConstraint(condition=models.Q(price__gt=0), name="product_price_positive")]

    def __str__(self) -> str:
        return f"{self.name} ({self.sku})"


class Order(models.Model):
    class Status(models.TextChoices):
        PLACED = "placed"
        PROCESSING = "processing"
        PAID = "paid"
        COMPLETED = "completed"
        PAYMENT_FAILED = "payment_failed"
        EXPIRED = "expired"
        CANCELLED = "cancelled"

    # The only id a customer ever sees: order pages and the API never expose the sequential pk.
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    email = models.EmailField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PLACED)
    currency = models.CharField(max_length=3)
    total = models.DecimalField(max_digits=12, decimal_places=2)
    payment_method = models.CharField(max_length=255)
    status_reason = models.CharField(max_length=200, blank=True)
    # The order points at its invoice; billing knows the order only as the invoice's owner "order:<id>".
    invoice = models.OneToOneField("billing.Invoice", related_name="+", on_delete=models.PROTECT)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        # An Index rather than db_index=True: on PostgreSQL that adds a second index for LIKE, which no
        # query of a status needs and every move of an order's status (three for a paid order) writes.
        indexes = [models.Index(fields=["status"], name="order_status")]

    def __str__(self) -> str:
        return f"Order {self.public_id} ({self.status})"

    @property
    def subject(self) -> str:
        return self.subject_of(self.public_id)

    @staticmethod
    def subject_of(public_id: uuid.UUID | str) -> str:
        """How the email ledger names an order (`public_id` as the order's jobs carry it, or the UUID)."""
        return f"order:{public_id}"

    @classmethod
    def move(cls, public_id: uuid.UUID | str, from_status: str, to_status: str, **fields: object) -> bool:
        """Move an order on from `from_status`, and from nothing else, in one conditional UPDATE, which
        locks its row until the transaction ends; False, changing nothing, when it is in another status.
        Sets `updated_at`, which `update()` leaves alone (auto_now applies to `save()` only)."""
        orders = cls.objects.filter(public_id=public_id, status=from_status)
        return bool(orders.update(status=to_status, updated_at=timezone.now(), **fields))


class OrderLine(models.Model):
    order = models.ForeignKey(Order, related_name="lines", on_delete=models.CASCADE)
    product = models.ForeignKey(Product, related_name="+", on_delete=models.PROTECT)
    sku = models.CharField(max_length=32)
    name = models.CharField(max_length=120)
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)
    quantity = models.PositiveIntegerField()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(quantity__gte=1), name="order_line_quantity_min_1")
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.sku}"

    @property
    def line_total(self) -> Decimal:
        return self.unit_price * self.quantity
