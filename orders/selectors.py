"""Reads for the order pages and the order API: what they show, never a write."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import reverse

from apikit.tools import get_by_public_id
from jobkit.selectors import timeline
from orders.models import Order, Product
from shipping.services import shipment_for


def product_payload(product: Product) -> dict[str, Any]:
    return {
        "sku": product.sku,
        "name": product.name,
        "price": str(product.price),
        "currency": product.currency,
        "stock": product.stock,
    }


def order_url(request: HttpRequest, order: Order) -> str:
    return request.build_absolute_uri(reverse("order-page", args=[order.public_id]))


def order_payload(order: Order, request: HttpRequest) -> dict[str, Any]:
    invoice = getattr(order, "invoice", None)
    shipment = shipment_for(str(order.public_id))
    return {
        "id": str(order.public_id),
        "status": order.status,
        "status_reason": order.status_reason,
        "email": order.email,
        "total": str(order.total),
        "currency": order.currency,
        "created_at": order.created_at.isoformat(),
        "url": order_url(request, order),
        "lines": [
            {
                "sku": line.sku,
                "name": line.name,
                "unit_price": str(line.unit_price),
                "quantity": line.quantity,
            }
            for line in order.lines.all()
        ],
        "invoice": invoice
        and {
            "number": invoice.number,
            "status": invoice.status,
            "amount": str(invoice.amount),
            "pdf_url": request.build_absolute_uri(reverse("invoice-pdf", args=[order.public_id]))
            if invoice.pdf
            else None,
        },
        "shipment": shipment
        and {
            "carrier_reference": shipment.carrier_reference,
            "tracking_number": shipment.tracking_number,
            "requested_at": shipment.requested_at.isoformat(),
        },
        "jobs": timeline(order.subject).as_dicts(),
    }


def get_order(order_id: str) -> Order:
    """The order with its invoice and lines, or a 404."""
    return get_by_public_id(
        Order.objects.select_related("invoice").prefetch_related("lines"), order_id, "order"
    )


def order_is_final(order: Order) -> bool:
    return order.status in {Order.Status.COMPLETED, Order.Status.EXPIRED, Order.Status.CANCELLED}
