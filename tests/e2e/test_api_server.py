"""The JSON API behind the demo's web server (gunicorn, started as `make demo` starts it)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from apikit.tools import DISCARD_MAX_BYTES
from devstack import processes
from orders.models import Order
from tests.harness import Stack

pytestmark = pytest.mark.e2e


@pytest.fixture
def web(e2e: Stack, log_dir: Path) -> Iterator[int]:
    port = processes.free_port()
    child = processes.start_web(log_dir, e2e.env, port)
    yield port
    child.stop()


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
