"""The paid order's follow-ups (patterns 1 and 3): independent jobs, each done exactly once."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from pypdf import PdfReader

from billing.models import Invoice, PaymentAttempt
from jobkit.models import JobRun
from notifications.models import Notification
from orders import jobs
from orders.models import Order
from tests.conftest import TEST_VAR
from tests.harness import wait_for

pytestmark = pytest.mark.e2e


def place_order(client, email="ada@example.com") -> str:
    body = {"email": email, "items": [{"sku": "TEA-EARL", "quantity": 2}], "payment_method": "pm_card_visa"}
    response = client.post("/api/orders", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 202
    return response.json()["id"]


def test_completed_order_has_one_pdf_two_emails_and_one_shipment(client, e2e, catalogue, wait_for_order):
    order_id = place_order(client)
    order = wait_for_order(order_id, "completed")
    invoice = Invoice.objects.get(owner=order.subject)
    payment = PaymentAttempt.objects.get(invoice=invoice, status="succeeded")

    # The worker wrote it where this session keeps its media files, and this process serves it from there.
    assert Path(invoice.pdf.path).is_relative_to(TEST_VAR / "media")
    pdf = client.get(f"/orders/{order_id}/invoice.pdf")
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    text = "".join(
        page.extract_text() for page in PdfReader(io.BytesIO(b"".join(pdf.streaming_content))).pages
    )
    for expected in (
        invoice.number,
        "Job Shop Ltd",
        "ada@example.com",
        "Earl Grey",
        "17.00",
        payment.gateway_reference,
    ):
        assert expected in text

    messages = e2e.sandbox.mail_messages()
    assert sorted(m["subject"] for m in messages) == sorted(
        [f"Invoice {invoice.number}", f"Your order {order_id[:8]} is confirmed"]
    )
    assert all(m["to"] == ["ada@example.com"] for m in messages)
    [with_pdf] = [m for m in messages if m["subject"].startswith("Invoice")]
    assert with_pdf["attachments"] == [
        {"filename": f"{invoice.number}.pdf", "content_type": "application/pdf"}
    ]
    assert [s["reference"] for s in e2e.sandbox.shipments()] == [order_id]


def test_mail_outage_does_not_hold_back_the_pdf_or_the_shipment(client, e2e, catalogue, wait_for_order):
    e2e.sandbox.set_fault("mail", outage=True)
    order_id = place_order(client)
    order = wait_for_order(order_id, "paid")
    # PDF and shipment finish while every email job keeps retrying.
    wait_for(
        lambda: (
            Invoice.objects.get(owner=order.subject).pdf
            and e2e.sandbox.shipments()
            and JobRun.objects.filter(name="orders.send_invoice_email", status="retrying").exists()
        ),
        30,
        lambda: str(list(JobRun.objects.values_list("name", "status", "attempts", "last_error"))),
    )
    assert e2e.sandbox.mail_messages() == []
    assert Order.objects.get(pk=order.pk).status == "paid"
    assert e2e.sandbox.stats()["mail"]["rejected"] >= 2

    e2e.sandbox.set_fault("mail", outage=False)
    wait_for_order(order_id, "completed")
    assert len(e2e.sandbox.mail_messages()) == 2
    assert sorted(Notification.objects.values_list("kind", "status")) == [
        ("order_confirmation", "sent"),
        ("order_invoice", "sent"),
    ]


def test_a_job_message_delivered_twice_does_its_work_once(client, e2e, catalogue, wait_for_order):
    order_id = place_order(client)
    wait_for_order(order_id, "completed")
    follow_ups = {
        jobs.store_invoice_pdf,
        jobs.send_invoice_email,
        jobs.send_order_confirmation,
        jobs.request_shipment,
        jobs.charge_order,
    }
    runs = {run.name: run for run in JobRun.objects.filter(name__in=[job.name for job in follow_ups])}
    pdf_name = Invoice.objects.get(owner=f"order:{order_id}").pdf.name
    for job in follow_ups:  # the very same message (same task id, same args), twice more
        for _ in range(2):
            job.apply_async(args=[order_id], task_id=runs[job.name].task_id)

    def all_redelivered() -> bool:
        again = JobRun.objects.filter(task_id__in=[r.task_id for r in runs.values()])
        # each re-rendered PDF hands over to a new invoice-email job; the ledger makes those no-ops
        handovers = JobRun.objects.filter(name=jobs.send_invoice_email.name).exclude(status="succeeded")
        return all(r.attempts == 3 and r.status == "succeeded" for r in again) and not handovers.exists()

    wait_for(all_redelivered, 30, lambda: str(list(JobRun.objects.values_list("name", "status", "attempts"))))
    assert len(e2e.sandbox.mail_messages()) == 2
    assert len(e2e.sandbox.shipments()) == 1
    assert [pi["status"] for pi in e2e.sandbox.payment_intents()] == ["succeeded"]
    assert Invoice.objects.get(owner=f"order:{order_id}").pdf.name == pdf_name
    assert Order.objects.get(public_id=order_id).status == "completed"
