"""Issuing invoices and storing their PDFs."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from billing import documents
from billing.models import Invoice, InvoiceLine


@dataclass(frozen=True)
class Line:
    description: str
    unit_price: Decimal
    quantity: int = 1


def issue_invoice(*, owner: str, email: str, currency: str, lines: list[Line]) -> Invoice:
    """An open invoice for `owner` ("kind:id"), numbered from its row id; call inside the owner's
    transaction, so the invoice exists exactly when what it bills does."""
    amount = sum((line.unit_price * line.quantity for line in lines), Decimal("0"))
    invoice = Invoice.objects.create(owner=owner, email=email, amount=amount, currency=currency)
    InvoiceLine.objects.bulk_create(
        InvoiceLine(invoice=invoice, description=line.description, unit_price=line.unit_price,
                    quantity=line.quantity)
        for line in lines
    )  # fmt: skip
    invoice.number = f"INV-{invoice.created_at:%Y}-{invoice.pk:07d}"
    Invoice.objects.filter(pk=invoice.pk).update(number=invoice.number)
    return invoice


def store_pdf(invoice_id: int) -> bool:
    """Render and store the invoice PDF once; False when it already exists (a repeated job)."""
    invoice = Invoice.objects.get(pk=invoice_id)
    if invoice.pdf:
        return False
    pdf = documents.render_pdf(invoice)
    name = f"invoices/{invoice.number}.pdf"
    # A crash after saving the file but before the row update leaves a file behind: overwrite it, so the
    # stored name stays the invoice number instead of the storage's "_abc123" de-duplicated variant.
    if default_storage.exists(name):
        default_storage.delete(name)
    stored = default_storage.save(name, ContentFile(pdf))
    return bool(Invoice.objects.filter(pk=invoice_id, pdf="").update(pdf=stored))
