"""Baseline endpoints, mounted only when SHOP_BENCHMARK_ENDPOINTS=1 (never in the demo or production)."""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apikit.tools import ApiError, json_object
from orders import checkout
from orders.api import validated_order


@csrf_exempt
@require_POST
def orders_without_enqueue(request: HttpRequest) -> JsonResponse:
    """POST /api/orders minus the enqueue: same parsing, validation and inserts."""
    try:
        with transaction.atomic():
            order_id = str(checkout.write_order(**validated_order(json_object(request))).public_id)
    except ApiError as exc:
        return JsonResponse({"errors": exc.errors}, status=exc.status)
    return JsonResponse({"id": order_id, "status": "placed"}, status=202)
