"""Order pages and the order/product JSON API. Views validate, call a service, and return."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from billing.forms import PaymentForm
from jobkit.models import JobRun
from orders import checkout
from orders.forms import CustomerForm, validate_items
from orders.models import Order, Product
from shipping.services import shipment_for
from shop.api import ApiError, bind_json, idempotent_create, json_body


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


@require_GET
def products_api(request: HttpRequest) -> JsonResponse:
    products = Product.objects.filter(active=True).order_by("sku")
    return JsonResponse([product_payload(p) for p in products], safe=False)


def get_order(order_id: str) -> Order:
    try:
        return Order.objects.select_related("invoice").prefetch_related("lines").get(public_id=order_id)
    except (Order.DoesNotExist, ValidationError) as exc:  # a malformed UUID is just "not found"
        raise Http404("No such order.") from exc


@csrf_exempt  # a JSON API for programs, authenticated by nothing but unguessable ids; no cookies involved
@require_http_methods(["POST"])
def orders_api(request: HttpRequest) -> JsonResponse:
    try:
        body = json_body(request)
        order_id, _ = idempotent_create(request, "orders", body, lambda: create_order_from(body))
    except ApiError as exc:
        return exc.response()
    order = Order.objects.get(public_id=order_id)
    payload = {"id": order_id, "status": order.status, "url": order_url(request, order)}
    return JsonResponse(payload, status=202)


def create_order_from(body: dict[str, Any], place: Callable[..., Order] = checkout.place_order) -> str:
    """Validate a JSON order request and place it; every problem is reported by field at once."""
    customer, errors = bind_json(body, CustomerForm, other_fields=("items",))
    lines, item_errors = validate_items(body.get("items"))
    errors.update(item_errors)
    if errors:
        raise ApiError(errors)
    with transaction.atomic():
        return str(place(lines=lines, **customer.cleaned_data).public_id)


@require_GET
def order_api(request: HttpRequest, order_id: str) -> JsonResponse:
    return JsonResponse(order_payload(get_order(order_id), request))


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


@csrf_exempt
@require_POST
def pay_again_api(request: HttpRequest, order_id: str) -> JsonResponse:
    """POST /api/orders/<id>/pay {"payment_method"}: a new payment attempt for a failed order."""
    order = get_order(order_id)
    try:
        body = json_body(request)
        form = PaymentForm({k: v for k, v in body.items() if k == "payment_method" and isinstance(v, str)})
        if not form.is_valid():
            raise ApiError({field: list(errors) for field, errors in form.errors.items()})
        checkout.pay_again(order_id, form.cleaned_data["payment_method"])
    except ApiError as exc:
        return exc.response()
    except checkout.NotPayable as exc:
        return JsonResponse({"errors": {"status": [str(exc)]}}, status=409)
    payload = {"id": order_id, "status": Order.Status.PROCESSING, "url": order_url(request, order)}
    return JsonResponse(payload, status=202)


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
