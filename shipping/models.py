from __future__ import annotations

from django.db import models


class Shipment(models.Model):
    """The carrier's record of one delivery, created once per reference (an order's public id)."""

    reference = models.CharField(max_length=80, help_text="what is shipped, e.g. an order id")
    carrier_reference = models.CharField(max_length=255)
    tracking_number = models.CharField(max_length=255, blank=True)
    requested_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # A constraint rather than unique=True, which on PostgreSQL adds an index for LIKE no query needs.
        constraints = [models.UniqueConstraint(fields=["reference"], name="shipment_reference_unique")]

    def __str__(self) -> str:
        return f"shipment {self.carrier_reference} for {self.reference}"
