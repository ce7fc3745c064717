"""The database is the source of truth: orders whose job messages were lost are found and moved on."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from jobkit.models import JobRun
from shop.celery import app as celery_app
from tests.conftest import STANDARD_WORKER

pytestmark = pytest.mark.e2e


def test_orders_survive_losing_every_queued_message(client, workers, catalogue, wait_for_order):
    [standard] = workers.workers
    workers.stop_worker(standard)
    body = {"email": "ada@example.com", "items": [{"sku": "TEA-EARL", "quantity": 1}]}
    body["payment_method"] = "pm_card_visa"
    order_ids = [
        client.post("/api/orders", data=json.dumps(body), content_type="application/json").json()["id"]
        for _ in range(2)
    ]
    with celery_app.connection_for_write() as connection:
        assert celery_app.control.purge(connection=connection) == 2  # the broker lost both messages

    call_command("sweep_stuck_orders", older_than=0)
    workers.add_worker(STANDARD_WORKER)
    for order_id in order_ids:
        wait_for_order(order_id, "completed")
    assert sorted(pi["metadata"]["order_id"] for pi in workers.sandbox.payment_intents()) == sorted(order_ids)
    lost = JobRun.objects.filter(name="orders.process_order", status="requeued")
    assert lost.count() == 2 and all("sweeper" in run.last_error for run in lost)


def test_sweeper_leaves_orders_with_live_jobs_alone(client, e2e, catalogue, wait_for_order):
    body = {"email": "ada@example.com", "items": [{"sku": "TEA-EARL", "quantity": 1}]}
    body["payment_method"] = "pm_card_visa"
    order_id = client.post("/api/orders", data=json.dumps(body), content_type="application/json").json()["id"]
    wait_for_order(order_id, "completed")
    call_command("sweep_stuck_orders", older_than=0)  # completed: nothing to do
    assert not JobRun.objects.filter(status="requeued").exists()


def test_sweep_command_refuses_a_negative_age(db):
    with pytest.raises(CommandError, match="--older-than"):
        call_command("sweep_stuck_orders", older_than=-1)
