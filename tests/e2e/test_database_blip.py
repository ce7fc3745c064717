"""A database blip (connections killed by PostgreSQL) is retried, never a dead job: every order still
completes, charged once. PostgreSQL only: SQLite has no server to drop connections."""

from __future__ import annotations

import json
import time

import pytest
from django.db import connection

from jobkit.models import JobRun
from orders import jobs
from orders.models import Order
from tests.conftest import order_timeline
from tests.harness import jobs_idle, wait_for

pytestmark = pytest.mark.e2e
ORDERS = 6
ORDER_JOBS = (
    jobs.reserve_stock,
    jobs.charge_order,
    jobs.store_invoice_pdf,
    jobs.send_invoice_email,
    jobs.send_order_confirmation,
    jobs.request_shipment,
)


def terminate_other_backends() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def test_jobs_survive_their_database_connections_being_terminated(client, workers, catalogue):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL): SQLite has no backends to terminate")
    workers.add_worker("second-worker")
    # Slow outside calls keep jobs holding their connections while we cut them.
    workers.sandbox.set_fault("carrier", latency_ms=700)
    workers.sandbox.set_fault("payments", latency_ms=300)
    body = {"email": "ada@example.com", "items": [{"sku": "TEA-EARL", "quantity": 1}]}
    body["payment_method"] = "pm_card_visa"
    order_ids = [
        client.post("/api/orders", data=json.dumps(body), content_type="application/json").json()["id"]
        for _ in range(ORDERS)
    ]
    terminated = 0
    # A blip: every worker connection cut, round after round, 1 s apart while jobs run. A job fails at
    # most once a round (its retry runs on a new connection, which only a later round cuts), so as many
    # rounds as the smallest retry budget of an order's jobs (store_invoice_pdf's 3) can never spend one.
    # More rounds could, and the job would rightly end as a dead letter: the test stack's retries come
    # 0-2 s apart (full jitter), so a budget of 3 lasts a few seconds.
    for _ in range(min(job.max_retries for job in ORDER_JOBS)):
        terminated += terminate_other_backends()
        time.sleep(1)
    assert terminated > 0
    workers.sandbox.clear_faults()

    done = Order.objects.filter(public_id__in=order_ids, status="completed")

    def explain() -> str:
        unfinished = Order.objects.filter(public_id__in=order_ids).exclude(status="completed")
        return "\n".join(order_timeline(str(o.public_id)) for o in unfinished) + workers.logs()

    wait_for(lambda: done.count() == ORDERS, 120, explain)
    assert not JobRun.objects.filter(status="dead").exists()
    # every job's timeline row ends settled, also those whose bookkeeping met a cut connection
    wait_for(jobs_idle, 30, explain)
    assert JobRun.objects.filter(retries__gte=1).exists()  # some job met a dropped connection and retried
    charged = sorted(pi["metadata"]["order_id"] for pi in workers.sandbox.payment_intents())
    assert charged == sorted(order_ids)
    assert len(workers.sandbox.shipments()) == ORDERS


def test_a_job_on_a_connection_dropped_while_idle_reconnects_without_spending_a_retry(
    client, workers, catalogue
):
    """Pool processes run no health check before a job (jobkit.tasks.skip_health_checks): the job's first
    query, its timeline write, is the one that finds the dropped connection and reconnects."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL): SQLite has no backends to terminate")
    body = {"email": "ada@example.com", "items": [{"sku": "TEA-EARL", "quantity": 1}]}
    body["payment_method"] = "pm_card_visa"

    def place_and_complete() -> str:
        order_id = client.post("/api/orders", data=json.dumps(body), content_type="application/json").json()[
            "id"
        ]
        completed = Order.objects.filter(public_id=order_id, status="completed")
        wait_for(completed.exists, 60, lambda: order_timeline(order_id) + workers.logs())
        wait_for(jobs_idle, 30, workers.logs)
        return order_id

    place_and_complete()  # each pool process now holds a connection, idle between jobs
    assert terminate_other_backends() > 0
    order_id = place_and_complete()

    jobs = JobRun.objects.filter(subject=f"order:{order_id}")
    assert jobs.count() == 6
    assert (
        list(jobs.exclude(status="succeeded", attempts=1, retries=0).values("name", "status", "attempts"))
        == []
    )
