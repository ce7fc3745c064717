"""Baseline endpoints, mounted only when SHOP_BENCHMARK_ENDPOINTS=1 (never in the demo or production)."""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest
from ninja import NinjaAPI, Status

from apikit.tools import Accepted, IdempotencyKey, idempotent_create, json_object
from orders import checkout
from orders.api import validated_order
from orders.models import Order
from orders.selectors import order_url

api = NinjaAPI(urls_namespace="bench", docs_url=None, openapi_url=None)


@api.post("/orders-without-enqueue", response={202: Accepted})
def orders_without_enqueue(request: HttpRequest, idempotency_key: IdempotencyKey = None) -> Status:
    """POST /api/orders minus the enqueue: the same kind of operation, parsing, validation, inserts and
    answer; only the first job's timeline row and its message are left out."""
    body = json_object(request)
    write = transaction.atomic(checkout.write_order)
    order = idempotent_create(idempotency_key, Order.objects, body, lambda: write(**validated_order(body)))
    return Status(202, {"id": str(order.public_id), "status": order.status, "url": order_url(request, order)})
