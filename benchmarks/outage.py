"""Calls that reach a down gateway: N orders placed during a gateway outage of D seconds, with the demo's
settings (its worker, the default breaker, the default gateway client). The circuit breaker should let
through its threshold plus one probe per cooldown, not a multiple of that for every retry layer.
"""

from __future__ import annotations

import http.client
import json
import time
from urllib.parse import urlsplit

from benchmarks.stack import BenchStack, wait_until_idle
from orders.models import Order
from shop.factories import ProductFactory

ORDER = {"email": "bench@example.com", "items": [{"sku": "OUT-1", "quantity": 1}]}
BODY = json.dumps({**ORDER, "payment_method": "pm_card_visa"})


def run(stack: BenchStack, orders: int = 12, outage_seconds: float = 45) -> dict[str, float]:
    ProductFactory(sku="OUT-1", name="Outage tea", price="5.00", stock=1_000_000)
    wait_until_idle()
    before = stack.sandbox.stats()["payments"]["received"]
    stack.sandbox.set_fault("payments", outage=True)
    started = time.monotonic()
    url = urlsplit(stack.web_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    ids = []
    for _ in range(orders):
        conn.request("POST", "/api/orders", body=BODY, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        ids.append(json.loads(response.read())["id"])
    time.sleep(max(0.0, outage_seconds - (time.monotonic() - started)))
    during = stack.sandbox.stats()["payments"]["received"] - before
    stack.sandbox.set_fault("payments", outage=False)
    deadline = time.monotonic() + 300
    while Order.objects.filter(public_id__in=ids, status="completed").count() < orders:
        if time.monotonic() > deadline:
            raise RuntimeError("orders did not complete after the outage")
        time.sleep(0.5)
    return {"orders": orders, "outage_seconds": outage_seconds, "calls": during, "per_order": during / orders}


def report(result: dict[str, float]) -> str:
    return (
        f"Gateway outage of {result['outage_seconds']:.0f} s, {result['orders']} orders: "
        f"{result['calls']} calls reached the down gateway ({result['per_order']:.2f} per order); "
        "all orders completed after it"
    )
