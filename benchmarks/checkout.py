"""Checkout latency: POST /api/orders with the worker running, against the same request minus the enqueue.

The baseline is the same kind of API operation with the same parsing, validation, inserts and answer
(benchmarks/views.py); the difference is the first job's timeline row and its message. The worker reacts
to each order at once, so on a small machine its processes compete with the next request for the CPU;
the same pair measured again with the worker paused (SIGSTOP) separates that from the enqueue's own cost.
"""

from __future__ import annotations

import http.client
import json
import statistics
import time
from urllib.parse import urlsplit

from benchmarks.stack import BenchStack
from shop.factories import ProductFactory

BODY = json.dumps(
    {
        "email": "bench@example.com",
        "items": [{"sku": "BENCH-1", "quantity": 1}],
        "payment_method": "pm_card_visa",
    }
)


def timed_posts(conn: http.client.HTTPConnection, path: str, count: int) -> list[float]:
    latencies = []
    for _ in range(count):
        start = time.perf_counter()
        conn.request("POST", path, body=BODY, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        latencies.append(time.perf_counter() - start)
        if response.status != 202:
            raise RuntimeError(f"{path} answered {response.status}")
    return latencies


def summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "median_ms": statistics.median(ordered) * 1000,
        "p95_ms": ordered[int(len(ordered) * 0.95) - 1] * 1000,
        "count": len(ordered),
    }


def run(stack: BenchStack, requests: int = 500) -> dict[str, object]:
    ProductFactory(sku="BENCH-1", price="9.90", stock=2_000_000_000)
    result = side_by_side(stack, requests)
    with stack.worker_paused():
        result["worker_paused"] = side_by_side(stack, requests)
    return result


def side_by_side(stack: BenchStack, requests: int, block: int = 50) -> dict[str, object]:
    url = urlsplit(stack.web_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    paths = {"checkout": "/api/orders", "baseline": "/bench/orders-without-enqueue"}
    for path in paths.values():  # warm up both paths (imports, connections, caches)
        timed_posts(conn, path, 20)
    samples: dict[str, list[float]] = {name: [] for name in paths}
    # Interleave blocks so drift (database growth, worker load) hits both sides alike.
    for _ in range(max(1, requests // block)):
        for name, path in paths.items():
            samples[name] += timed_posts(conn, path, block)
    conn.close()
    checkout, baseline = summary(samples["checkout"]), summary(samples["baseline"])
    return {
        "checkout": checkout,
        "baseline": baseline,
        "ratio_median": checkout["median_ms"] / baseline["median_ms"],
        "ratio_p95": checkout["p95_ms"] / baseline["p95_ms"],
        # every request's latency, for the report's distribution chart
        "samples_ms": {name: [round(s * 1000, 3) for s in samples[name]] for name in paths},
    }


def report(result: dict[str, object]) -> str:
    row = "  {:<30} median {:7.2f} ms   p95 {:7.2f} ms   n={}"
    lines = ["Checkout latency (POST /api/orders, sequential client)"]
    for title, pair in (("worker running", result), ("worker paused", result["worker_paused"])):
        c, b = pair["checkout"], pair["baseline"]
        lines += [
            f" {title}:",
            row.format("checkout (insert + enqueue)", c["median_ms"], c["p95_ms"], c["count"]),
            row.format("baseline (same, no enqueue)", b["median_ms"], b["p95_ms"], b["count"]),
            "  {:<30} median {:.2f}x      p95 {:.2f}x".format(
                "ratio checkout/baseline", pair["ratio_median"], pair["ratio_p95"]
            ),
        ]
    return "\n".join(lines)
