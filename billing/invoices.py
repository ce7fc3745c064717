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


@dataclass(frozen=True)
class Bill:
    """What one invoice is to say: whose it is ("kind:id"), where it goes, and its lines."""

    owner: str
    email: str
    currency: str
    lines: list[Line]

    @property
    def amount(self) -> Decimal:
        return sum((line.unit_price * line.quantity for line in self.lines), Decimal("0"))


def issue_invoice(*, owner: str, email: str, currency: str, lines: list[Line]) -> Invoice:
    """`issue_invoices` for one."""
    return issue_invoices([Bill(owner, email, currency, lines)])[0]


def issue_invoices(bills: list[Bill]) -> list[Invoice]:
    """Open invoices, in the order of `bills` (each numbered from its row id); call inside the owners'
    transaction, so an invoice exists exactly when what it bills does. Two statements however many."""
    invoices = Invoice.objects.bulk_create(
        Invoice(owner=bill.owner, email=bill.email, amount=bill.amount, currency=bill.currency)
        for bill in bills
    )
    InvoiceLine.objects.bulk_create(
        InvoiceLine(invoice=invoice, description=line.description, unit_price=line.unit_price,
                    quantity=line.quantity)
        for invoice, bill in zip(invoices, bills, strict=True)
        for line in bill.lines
    )  # fmt: skip
    return invoices


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
