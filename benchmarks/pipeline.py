"""Order pipeline throughput: orders fully `completed` per second with the demo's worker settings
(one worker, 2 pool processes, all queues), against the raw WeasyPrint render rate of the same invoice
measured in the same run, before and after the pipeline. Each order's pipeline renders one PDF, so the
raw rate is the ceiling a pipeline that adds nothing would reach with one process. Both sides are
measured warm (a few orders first, one render first), and long enough that filling and draining the
pipeline weigh little: 200 orders, and as many raw renders, half before and half after.
"""

from __future__ import annotations

import http.client
import json
import time
from urllib.parse import urlsplit

from django.db.models import Max, QuerySet

from benchmarks.stack import BenchStack, wait_until_idle
from billing.documents import render_pdf
from billing.models import Invoice
from orders.models import Order
from shop.factories import ProductFactory

BODY = json.dumps(
    {
        "email": "bench@example.com",
        "items": [{"sku": "PIPE-1", "quantity": 2}],
        "payment_method": "pm_card_visa",
    }
)


def post_orders(stack: BenchStack, count: int) -> None:
    url = urlsplit(stack.web_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    for _ in range(count):
        conn.request("POST", "/api/orders", body=BODY, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        if response.status != 202:
            raise RuntimeError(f"checkout answered {response.status}")
    conn.close()


def pipeline_orders(after_id: int) -> QuerySet[Order]:
    """This benchmark's orders: those placed after `after_id`, the last order of earlier benchmarks. An
    id range, so each poll below reads this benchmark's rows only (a join on the order lines' sku read all
    of the checkout benchmark's thousands as well: 4-7 ms a poll on PostgreSQL)."""
    return Order.objects.filter(pk__gt=after_id)


def wait_until_completed(after_id: int, count: int) -> None:
    """Poll twice a second until the last few orders, then every 50 ms: each poll is a COUNT that takes
    CPU from the pipeline it measures, and only the last poll's delay adds to the measured time."""
    pipeline = pipeline_orders(after_id)
    deadline = time.monotonic() + 600
    while (completed := pipeline.filter(status=Order.Status.COMPLETED).count()) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"pipeline stuck: {list(pipeline.values_list('status', flat=True))}")
        time.sleep(0.5 if count - completed > 10 else 0.05)


def run(stack: BenchStack, orders: int = 200, warm_up: int = 10) -> dict[str, float]:
    ProductFactory(sku="PIPE-1", name="Pipeline tea", price="7.50", stock=2_000_000_000)
    wait_until_idle()
    after_id = Order.objects.aggregate(last=Max("pk"))["last"] or 0
    # Both sides warm, as the raw render below: a worker process's first jobs import their modules and
    # load WeasyPrint's fonts, a second or more of CPU that a 20-second measurement would count as its own.
    post_orders(stack, warm_up)
    wait_until_completed(after_id, warm_up)
    invoice = Invoice.objects.get(pk=pipeline_orders(after_id).first().invoice_id)
    render_pdf(invoice)  # warm up fonts and caches
    # The raw rate before and after the pipeline, the ratio against their mean: this kind of machine's
    # render rate drifted by half within an hour, and by a third between two 5-second windows (50 renders
    # each) a minute apart. As many renders as orders, so the baseline's windows together are as long as
    # the pipeline's.
    renders_before = render_rate(invoice, orders // 2)
    start = time.perf_counter()
    post_orders(stack, orders)
    wait_until_completed(after_id, warm_up + orders)
    pipeline_rate = orders / (time.perf_counter() - start)
    renders_after = render_rate(invoice, orders - orders // 2)
    raw = (renders_before + renders_after) / 2
    return {"orders": orders, "pipeline_per_s": pipeline_rate, "render_per_s": raw,
            "render_runs": [renders_before, renders_after], "ratio": pipeline_rate / raw}  # fmt: skip


def render_rate(invoice: Invoice, renders: int) -> float:
    start = time.perf_counter()
    for _ in range(renders):
        render_pdf(invoice)
    return renders / (time.perf_counter() - start)


def report(result: dict[str, float]) -> str:
    return "\n".join(
        [
            "Order pipeline throughput (checkout -> charge -> PDF -> 2 emails -> shipment -> completed)",
            f"  pipeline (1 worker, 2 processes)   {result['pipeline_per_s']:6.2f} orders/s"
            f"   n={result['orders']}",
            f"  raw WeasyPrint render, 1 process   {result['render_per_s']:6.2f} invoices/s"
            f"   (mean of {', '.join(f'{rate:.2f}' for rate in result['render_runs'])}: before, after)",
            f"  ratio pipeline/raw render          {result['ratio']:.2f}x",
        ]
    )
