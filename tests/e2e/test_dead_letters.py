"""Dead letters: a job that cannot succeed by retrying dies at once, keeps its error, and staff can
re-enqueue it from the admin once the cause is fixed."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model

from jobkit.models import JobRun
from tests.conftest import STANDARD_WORKER
from tests.harness import wait_for

pytestmark = pytest.mark.e2e


def test_broken_invoice_template_goes_to_dead_letters_and_requeue_heals(
    client, workers, catalogue, wait_for_order
):
    [standard] = workers.workers
    workers.stop_worker(standard)
    broken = workers.add_worker("broken-template-worker", INVOICE_PDF_TEMPLATE="billing/no-such-invoice.html")
    body = {"email": "ada@example.com", "items": [{"sku": "TEA-EARL", "quantity": 1}]}
    body["payment_method"] = "pm_card_visa"
    order_id = client.post("/api/orders", data=json.dumps(body), content_type="application/json").json()["id"]

    render = JobRun.objects.filter(name="orders.store_invoice_pdf")
    dead = wait_for(lambda: render.filter(status="dead").first(), 30, workers.logs)
    assert dead.attempts == 1 and dead.retries == 0  # no retry storm for a bug
    assert "no-such-invoice.html" in dead.last_error
    order = wait_for_order(order_id, "paid")  # the other follow-ups still ran
    wait_for(
        lambda: workers.sandbox.shipments() and len(workers.sandbox.mail_messages()) == 1, 30, workers.logs
    )

    staff = get_user_model().objects.create_superuser("staff", "staff@example.com", "pw-for-test-only")
    client.force_login(staff)
    listing = client.get("/admin/jobkit/deadjob/")
    assert listing.status_code == 200 and b"orders.store_invoice_pdf" in listing.content
    page = client.get(f"/orders/{order_id}/")
    assert b"failed for good" in page.content and b"no-such-invoice.html" in page.content

    workers.stop_worker(broken)  # the fix: a worker with the real template
    workers.add_worker(STANDARD_WORKER)
    response = client.post("/admin/jobkit/deadjob/", {"action": "requeue", "_selected_action": [dead.pk]})
    assert response.status_code == 302
    wait_for_order(order_id, "completed")
    assert JobRun.objects.get(pk=dead.pk).status == "requeued"
    assert render.filter(status="succeeded").count() == 1
    assert len(workers.sandbox.mail_messages()) == 2
    assert order.invoice.number in {
        m["subject"].removeprefix("Invoice ") for m in workers.sandbox.mail_messages()
    }
