"""The JSON API behind the demo's web server (gunicorn, started as `make demo` starts it), and the relay
beside it (gunicorn.conf.py, jobkit/relay.py) that sends the jobs its requests stage."""

from __future__ import annotations

import http.client
import json
import os
import signal
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings

from apikit.tools import DISCARD_MAX_BYTES
from devstack import processes
from jobkit import recovery
from jobkit.models import JobRun
from orders.models import Order
from tests.harness import Stack

pytestmark = pytest.mark.e2e


@pytest.fixture
def web_server(e2e: Stack, log_dir: Path) -> Iterator[processes.Child]:
    child = processes.start_web(log_dir, e2e.env, processes.free_port())
    yield child
    child.stop()


@pytest.fixture
def web(web_server: processes.Child) -> int:
    return web_port(web_server)


def web_port(server: processes.Child) -> int:
    return int(server.argv[server.argv.index("--bind") + 1].rsplit(":", 1)[1])


def relay_pid(server: processes.Child) -> int:
    pid = processes.relay_pid(server)
    assert pid is not None, f"no relay beside the web server\n{server.output_tail()}"
    return pid


def post_order(port: int) -> str:
    body = {
        "email": "ada@example.com",
        "items": [{"sku": "TEA-EARL", "quantity": 1}],
        "payment_method": "pm_card_visa",
    }
    conn = http.client.HTTPConnection(processes.HOST, port, timeout=30)
    conn.request("POST", "/api/orders", body=json.dumps(body), headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status == 202, response.read()
    return json.loads(response.read())["id"]


def test_the_web_server_stages_its_jobs_and_the_relay_sends_them(web, catalogue, wait_for_order, e2e):
    order_id = post_order(web)

    wait_for_order(order_id, "completed")
    first = JobRun.objects.get(name="orders.reserve_stock")
    assert (first.status, first.attempts, first.last_error) == ("succeeded", 1, "")
    assert len(e2e.sandbox.payment_intents()) == 1


def test_with_the_relay_hung_staged_jobs_wait_and_the_recovery_sweep_sends_them(
    web_server, catalogue, wait_for_order, e2e
):
    relay = relay_pid(web_server)
    os.kill(relay, signal.SIGSTOP)  # alive, so not started again, but sending nothing
    try:
        order_id = post_order(web_port(web_server))
        time.sleep(1)  # twenty times the relay's polling interval: it would have sent it by now
        staged = JobRun.objects.get(name="orders.reserve_stock")
        assert staged.status == "unsent" and Order.objects.get(public_id=order_id).status == "placed"

        report = recovery.sweep(timedelta(seconds=600))
        assert report.published == [staged.task_id]
        wait_for_order(order_id, "completed")
        assert JobRun.objects.filter(name="orders.reserve_stock").count() == 1  # sent late, not copied
    finally:
        os.kill(relay, signal.SIGCONT)


def test_a_killed_relay_is_started_again_and_sends_what_was_staged(web_server, catalogue, wait_for_order):
    killed = relay_pid(web_server)
    os.kill(killed, signal.SIGKILL)
    order_id = post_order(web_port(web_server))

    wait_for_order(order_id, "completed")  # no sweep here: only a relay sends the staged job
    assert relay_pid(web_server) != killed
    assert "The relay exited; starting it again." in web_server.output_tail()


def test_a_body_over_the_upload_limit_gets_its_413_not_a_reset_connection(web, catalogue):
    # Well past Django's limit, as a client sends it: the whole body first, then it reads the answer.
    size = settings.DATA_UPLOAD_MAX_MEMORY_SIZE * 8
    assert size < DISCARD_MAX_BYTES
    body = json.dumps({"email": "a" * size, "items": [], "payment_method": "pm_card_visa"}).encode()
    conn = http.client.HTTPConnection(processes.HOST, web, timeout=30)
    conn.request("POST", "/api/orders", body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status == 413
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    assert json.loads(response.read()) == {"errors": {"body": [f"The body is larger than {limit} bytes."]}}
    assert not Order.objects.exists()
