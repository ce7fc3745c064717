"""Who an invoice belongs to, and how billing tells them about payments, without importing them.

An invoice's `owner` is "kind:id". The app that owns that kind of invoice registers, in its
`AppConfig.ready()`, an object (a module will do) with two functions (see `jobkit/registry.py`):
- `wants_payment(owner_id, invoice) -> bool`: is the owner still waiting for a payment of this invoice?
  A charge job that arrives after the owner moved on (paid, cancelled, declined) opens no new attempt.
- `payment_settled(owner_id, attempt) -> None`: a payment attempt succeeded or failed; runs inside the
  transaction that records it, so the owner's reaction commits with it or not at all.
"""

from __future__ import annotations

from typing import Protocol

from billing.models import Invoice, PaymentAttempt
from jobkit.registry import Registry


class InvoiceOwner(Protocol):
    def wants_payment(self, owner_id: str, invoice: Invoice) -> bool: ...

    def payment_settled(self, owner_id: str, attempt: PaymentAttempt) -> None: ...


owners: Registry[InvoiceOwner] = Registry("invoice owner")


def wants_payment(invoice: Invoice) -> bool:
    return owners[invoice.owner_kind].wants_payment(invoice.owner_id, invoice)


def payment_settled(attempt: PaymentAttempt) -> None:
    invoice = attempt.invoice
    owners[invoice.owner_kind].payment_settled(invoice.owner_id, attempt)
