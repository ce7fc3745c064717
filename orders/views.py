"""Order pages, and the payloads and lookups the JSON API (orders/api.py) shares with them."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from billing.forms import PaymentForm
from jobkit.models import JobRun
from orders import checkout
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
        "jobs": [run.as_dict() for run in JobRun.objects.filter(subject=order.subject)],
    }


def get_order(order_id: str) -> Order:
    try:
        return Order.objects.select_related("invoice").prefetch_related("lines").get(public_id=order_id)
    except (Order.DoesNotExist, ValidationError) as exc:  # a malformed UUID is just "not found"
        raise Http404("No such order.") from exc


@require_http_methods(["GET", "POST"])
def order_page(request: HttpRequest, order_id: str) -> HttpResponse:
    """The order's status and job timeline; a `payment_failed` order can be paid again from here."""
    order = get_order(order_id)
    pay_again = PaymentForm(request.POST or None, initial={"payment_method": order.payment_method})
    if request.method == "POST" and pay_again.is_valid():
        try:
            checkout.pay_again(order_id, pay_again.cleaned_data["payment_method"])
        except checkout.NotPayable as exc:
            messages.error(request, str(exc))
        return redirect("order-page", order_id=order.public_id)
    jobs = list(JobRun.objects.filter(subject=order.subject))
    context = {
        "order": order,
        "shipment": shipment_for(str(order.public_id)),
        "jobs": jobs,
        "dead_jobs": [job for job in jobs if job.status == JobRun.Status.DEAD],
        "final": order_is_final(order),
        "pay_again": pay_again,
    }
    return render(request, "orders/order.html", context, status=400 if pay_again.errors else 200)


@require_GET
def invoice_pdf(request: HttpRequest, order_id: str) -> FileResponse:
    """The invoice PDF for whoever holds the order's unguessable URL (the guest checkout's owner)."""
    invoice = getattr(get_order(order_id), "invoice", None)
    if invoice is None or not invoice.pdf:
        raise Http404("The invoice PDF is not ready yet.")
    return FileResponse(
        invoice.pdf.open("rb"), content_type="application/pdf", filename=f"{invoice.number}.pdf"
    )


def order_is_final(order: Order) -> bool:
    return order.status in {Order.Status.COMPLETED, Order.Status.EXPIRED, Order.Status.CANCELLED}


def product_list(request: HttpRequest) -> HttpResponse:
    return render(request, "orders/catalogue.html", {"products": Product.objects.filter(active=True)})


def product_detail(request: HttpRequest, sku: str) -> HttpResponse:
    product = get_object_or_404(Product, sku=sku, active=True)
    return render(request, "orders/product.html", {"product": product})
