"""Load: C concurrent clients place orders through `POST /api/orders` for D seconds with the worker
running; checkout throughput, p50/p95/p99 latency, errors (must be 0), and how long until every accepted
order is `completed`. Then the same with the gateway down for the whole run: checkout must not slow down
(it only writes and enqueues) and every order must complete once the gateway is back.
"""

from __future__ import annotations

import http.client
import json
import statistics
import threading
import time
from urllib.parse import urlsplit

from benchmarks.stack import BenchStack, wait_until_idle
from orders.models import Order
from shop.factories import ProductFactory

BODY = json.dumps(
    {
        "email": "load@example.com",
        "items": [{"sku": "LOAD-1", "quantity": 1}],
        "payment_method": "pm_card_visa",
    }
)


def _client(url: str, until: float, latencies: list[float], errors: list[str], ids: list[str]) -> None:
    """One client placing orders back to back, each on a new connection. Not keep-alive: gunicorn's
    workers each keep the connections they accepted, so 50 persistent connections split between its two
    workers once, at random, and a run's p50 measured that split (1.87x and 3.52x between two runs of
    equal throughput). A new connection takes the accept queue the workers share."""
    parts = urlsplit(url)
    while time.monotonic() < until:
        start = time.perf_counter()
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        try:
            conn.request("POST", "/api/orders", body=BODY, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            body = response.read()
        except OSError as exc:  # refused, reset: counted
            errors.append(f"{type(exc).__name__}: {exc}")
            continue
        finally:
            conn.close()
        latencies.append(time.perf_counter() - start)
        if response.status == 202:
            ids.append(json.loads(body)["id"])
        else:
            errors.append(f"HTTP {response.status}: {body[:200]!r}")


def run_once(stack: BenchStack, clients: int, seconds: float, gateway_down: bool) -> dict[str, float]:
    wait_until_idle()
    if gateway_down:
        stack.sandbox.set_fault("payments", outage=True)
    latencies: list[float] = []
    errors: list[str] = []
    ids: list[str] = []
    until = time.monotonic() + seconds
    threads = [
        threading.Thread(target=_client, args=(stack.web_url, until, latencies, errors, ids))
        for _ in range(clients)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if gateway_down:
        stack.sandbox.set_fault("payments", outage=False)
    deadline = time.monotonic() + 1800
    while Order.objects.filter(public_id__in=ids).exclude(status="completed").exists():
        if time.monotonic() > deadline:
            raise RuntimeError("accepted orders did not all complete")
        time.sleep(1)
    settled = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "clients": clients,
        "seconds": seconds,
        "gateway_down": gateway_down,
        "orders": len(ids),
        "per_s": len(ids) / elapsed,
        "p50_ms": cuts[49] * 1000,
        "p95_ms": cuts[94] * 1000,
        "p99_ms": cuts[98] * 1000,
        "errors": len(errors),
        "first_errors": errors[:5],
        "all_completed_after_s": settled,
    }


def run(stack: BenchStack, clients: int = 50, seconds: float = 60) -> list[dict[str, float]]:
    ProductFactory(sku="LOAD-1", name="Load tea", price="3.00", stock=2_000_000_000)
    return [run_once(stack, clients, seconds, gateway_down) for gateway_down in (False, True)]


def report(results: list[dict[str, float]]) -> str:
    lines = [f"Load: {results[0]['clients']} clients for {results[0]['seconds']:.0f} s each"]
    for r in results:
        lines.append(
            f"  gateway {'down' if r['gateway_down'] else 'up  '}: {r['orders']} orders, {r['per_s']:.1f}/s, "
            f"p50 {r['p50_ms']:.1f} ms, p95 {r['p95_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
            f"{r['errors']} errors, all completed after {r['all_completed_after_s']:.0f} s"
        )
    up, down = results
    lines.append(
        f"  checkout p50 with the gateway down vs up: {down['p50_ms'] / up['p50_ms']:.2f}x (aim <= 1.2x)"
    )
    return "\n".join(lines)
