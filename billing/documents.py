"""Invoice PDFs: rendered with WeasyPrint from a Django template, stored through Django's storage API."""

from __future__ import annotations

import functools
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.template import TemplateDoesNotExist, TemplateSyntaxError
from django.template.loader import render_to_string
from weasyprint import HTML
from weasyprint.text.fonts import FontConfiguration

from billing.models import Invoice, PaymentAttempt
from jobkit.errors import PermanentError

CENT = Decimal("0.01")


def invoice_context(invoice: Invoice) -> dict[str, object]:
    # Catalogue prices include VAT: show the net and the VAT part of the gross total.
    rate = Decimal(str(settings.SHOP_VAT_RATE))
    net = (invoice.amount / (1 + rate)).quantize(CENT, ROUND_HALF_UP)
    return {
        "invoice": invoice,
        "seller": settings.SHOP_SELLER,
        "lines": invoice.lines.all(),
        "totals": {
            "net": net,
            "vat": invoice.amount - net,
            "gross": invoice.amount,
            "vat_percent": rate * 100,
        },
        "payment": invoice.attempts.filter(status=PaymentAttempt.Status.SUCCEEDED).first(),
    }


@functools.cache
def _font_config() -> FontConfiguration:
    # One per process: building it for every PDF costs about a sixth of the render.
    return FontConfiguration()


def render_pdf(invoice: Invoice) -> bytes:
    """The invoice as PDF bytes. A broken template is a bug, not an outage: never worth a retry."""

    try:
        html = render_to_string(settings.INVOICE_PDF_TEMPLATE, invoice_context(invoice))
    except (TemplateSyntaxError, TemplateDoesNotExist) as exc:
        raise PermanentError(f"invoice template {settings.INVOICE_PDF_TEMPLATE}: {exc}") from exc
    return HTML(string=html).write_pdf(font_config=_font_config())
