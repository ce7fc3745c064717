"""The product and order operations of the JSON API (mounted under /api/ by shop/api.py).

Each operation reads, validates with the checkout's forms, calls a service, and answers; the work
itself runs in background jobs, so a create answers 202 with the order's URL to follow.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from ninja import Field, Router, Status

from apikit.tools import (
    Accepted,
    ApiError,
    Email,
    Errors,
    IdempotencyKey,
    In,
    Job,
    Out,
    bind_json,
    idempotent_create,
    json_object,
    json_request_body,
)
from billing.forms import PaymentForm, PaymentMethod
from orders import checkout
from orders.forms import CustomerForm, validate_items
from orders.models import Order, Product
from orders.selectors import get_order, order_payload, order_url, product_payload

router = Router(tags=["orders"])

# --- Request bodies: documentation only; the forms decide (see apikit/tools.py) ---------------------


class OrderItemIn(In):
    sku: str = Field(description="A product's SKU, from GET /api/products.", examples=["TEA-EARL"])
    quantity: int = Field(ge=1, le=settings.SHOP_MAX_LINE_QUANTITY)


class OrderIn(In):
    email: Email
    items: list[OrderItemIn] = Field(min_length=1, max_length=settings.SHOP_MAX_ORDER_LINES)
    payment_method: PaymentMethod


class PaymentIn(In):
    payment_method: PaymentMethod


# --- Responses: the shapes of the payload functions in orders/views.py ---------------------------------


class ProductOut(Out):
    sku: str
    name: str
    price: str = Field(description='A decimal in a string, e.g. "8.50".')
    currency: str
    stock: int


class LineOut(Out):
    sku: str
    name: str
    unit_price: str
    quantity: int


class InvoiceOut(Out):
    number: str
    status: str
    amount: str
    pdf_url: str | None = Field(description="Set once the invoice PDF is rendered.")


class ShipmentOut(Out):
    carrier_reference: str
    tracking_number: str
    requested_at: str


class OrderOut(Out):
    id: str
    status: str
    status_reason: str
    email: str
    total: str
    currency: str
    created_at: str
    url: str = Field(description="The order's page, with its live job timeline.")
    lines: list[LineOut]
    invoice: InvoiceOut | None
    shipment: ShipmentOut | None
    jobs: list[Job]


# Stateful clients (and schemathesis) follow an order from its creation to its detail and payment.
ORDER_LINKS = {
    "GetOrder": {"operationId": "getOrder", "parameters": {"order_id": "$response.body#/id"}},
    "PayOrder": {"operationId": "payOrder", "parameters": {"order_id": "$response.body#/id"}},
}


@router.get("/products", response=list[ProductOut], operation_id="listProducts")
def list_products(request: HttpRequest) -> list[dict[str, Any]]:
    return [product_payload(p) for p in Product.objects.filter(active=True).order_by("sku")]


@router.post(
    "/orders",
    response={202: Accepted, (400, 409, 413, 415, 422): Errors},
    operation_id="createOrder",
    openapi_extra={**json_request_body(OrderIn), "responses": {202: {"links": ORDER_LINKS}}},
)
def create_order(request: HttpRequest, idempotency_key: IdempotencyKey = None) -> Status:
    """Place an order. The answer comes once the order is committed; payment, invoice, emails and the
    shipment follow in background jobs."""
    body = json_object(request)
    order = idempotent_create(
        idempotency_key, Order.objects, body, lambda: checkout.place_order(**validated_order(body))
    )
    return Status(202, {"id": str(order.public_id), "status": order.status, "url": order_url(request, order)})


def validated_order(body: dict[str, Any]) -> dict[str, Any]:
    """A JSON order request as `place_order`'s arguments; every problem is reported by field at once."""
    customer, errors = bind_json(body, CustomerForm, other_fields=("items",))
    lines, item_errors = validate_items(body.get("items"))
    errors.update(item_errors)
    if errors:
        raise ApiError(errors)
    return {"lines": lines, **customer.cleaned_data}


@router.get("/orders/{order_id}", response={200: OrderOut, 404: Errors}, operation_id="getOrder")
def get_order_detail(request: HttpRequest, order_id: str) -> dict[str, Any]:
    """Status, lines, invoice, shipment and the order's job timeline."""
    return order_payload(get_order(order_id), request)


@router.post(
    "/orders/{order_id}/pay",
    response={202: Accepted, (400, 404, 409, 413, 415): Errors},
    operation_id="payOrder",
    openapi_extra=json_request_body(PaymentIn),
)
def pay_order(request: HttpRequest, order_id: str) -> Status:
    """A new payment attempt for an order whose payment failed (409 in any other status)."""
    order = get_order(order_id)
    form, errors = bind_json(json_object(request), PaymentForm)
    if errors:
        raise ApiError(errors)
    try:
        checkout.pay_again(order_id, form.cleaned_data["payment_method"])
    except checkout.NotPayable as exc:
        raise ApiError({"status": [str(exc)]}, status=409) from exc
    payload = {
        "id": str(order.public_id),
        "status": Order.Status.PROCESSING,
        "url": order_url(request, order),
    }
    return Status(202, payload)
