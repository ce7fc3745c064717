"""Checkout to payment, end to end: the request only writes and enqueues; a real worker charges
the order through the stripe SDK against the sandbox."""

from __future__ import annotations

import json

import pytest

from billing.models import Invoice, PaymentAttempt
from jobkit import relay
from jobkit.models import JobRun
from orders.models import Order, Product
from tests.harness import broker_unreachable

pytestmark = pytest.mark.e2e


def place(client, **overrides):
    body = {
        "email": "ada@example.com",
        "items": [{"sku": "TEA-EARL", "quantity": 2}, {"sku": "MUG-BLUE", "quantity": 1}],
        "payment_method": "pm_card_visa",
        **overrides,
    }
    return client.post("/api/orders", data=json.dumps(body), content_type="application/json")


def charges_for(e2e, order_id: str) -> list[dict]:
    return [pi for pi in e2e.sandbox.payment_intents() if pi["metadata"].get("order_id") == order_id]


def test_api_order_is_paid_by_the_worker(client, e2e, catalogue, wait_for_order):
    response = place(client)
    assert response.status_code == 202
    created = response.json()
    assert created["status"] == "placed"
    assert created["url"].endswith(f"/orders/{created['id']}/")

    order = wait_for_order(created["id"], "completed")
    invoice = Invoice.objects.get(owner=order.subject)
    assert order.total == invoice.amount == 31
    assert invoice.status == "paid"
    [intent] = charges_for(e2e, created["id"])
    assert intent["status"] == "succeeded"
    assert intent["amount"] == 3100
    assert intent["metadata"] == {"order_id": created["id"], "invoice_number": invoice.number}
    attempt = PaymentAttempt.objects.get(invoice=invoice)
    assert attempt.gateway_reference == intent["id"]
    assert dict(Product.objects.values_list("sku", "stock")) == {"TEA-EARL": 48, "MUG-BLUE": 4}

    detail = client.get(f"/api/orders/{created['id']}").json()
    assert detail["status"] == "completed"
    assert detail["invoice"] == {
        "number": invoice.number,
        "status": "paid",
        "amount": "31.00",
        "pdf_url": f"http://testserver/orders/{created['id']}/invoice.pdf",
    }
    assert detail["shipment"]["carrier_reference"].startswith("shp_")
    assert sorted((j["name"], j["queue"], j["status"], j["attempts"]) for j in detail["jobs"]) == [
        ("orders.charge_order", "billing", "succeeded", 1),
        ("orders.request_shipment", "external", "succeeded", 1),
        ("orders.reserve_stock", "default", "succeeded", 1),
        ("orders.send_invoice_email", "mailers", "succeeded", 1),
        ("orders.send_order_confirmation", "mailers", "succeeded", 1),
        ("orders.store_invoice_pdf", "documents", "succeeded", 1),
    ]


def test_an_order_the_stock_no_longer_covers_is_cancelled_and_takes_no_stock(
    client, e2e, catalogue, wait_for_order
):
    # The order fits the stock when placed; its job waits (sent late, by a drain) while another sale takes
    # the tea. Its mug (sku order: reserved before the tea) is taken first and must be given back.
    with broker_unreachable():
        response = place(
            client, items=[{"sku": "MUG-BLUE", "quantity": 1}, {"sku": "TEA-EARL", "quantity": 20}]
        )
    assert response.status_code == 202
    Product.objects.filter(sku="TEA-EARL").update(stock=10)
    assert relay.drain() == ([JobRun.objects.get(name="orders.reserve_stock").task_id], True)

    order = wait_for_order(response.json()["id"], "cancelled")
    assert order.status_reason == "TEA-EARL is out of stock"
    assert dict(Product.objects.values_list("sku", "stock")) == {"TEA-EARL": 10, "MUG-BLUE": 5}
    assert list(JobRun.objects.values_list("name", "status")) == [("orders.reserve_stock", "succeeded")]
    assert charges_for(e2e, str(order.public_id)) == []


def test_html_checkout_is_paid_by_the_worker(client, e2e, catalogue, wait_for_order):
    client.post("/cart/add/", {"sku": "TEA-EARL", "quantity": "3"})
    response = client.post(
        "/checkout/", {"email": "grace@example.com", "payment_method": "pm_card_mastercard"}
    )
    assert response.status_code == 302
    order = Order.objects.get()
    assert response["Location"] == f"/orders/{order.public_id}/"
    assert client.get("/cart/").context["rows"] == []  # the cart is emptied by a successful checkout

    wait_for_order(str(order.public_id), "completed")
    page = client.get(response["Location"])
    assert page.status_code == 200
    assert b'class="status completed"' in page.content
    assert b"orders.charge_order" in page.content


def test_declined_card_ends_in_payment_failed(client, e2e, catalogue, wait_for_order):
    created = place(client, payment_method="pm_card_chargeDeclined").json()
    order = wait_for_order(created["id"], "payment_failed")
    assert "declined" in order.status_reason.lower()
    attempt = PaymentAttempt.objects.get(invoice__owner=order.subject)
    assert attempt.status == "failed"
    assert attempt.failure_code == "generic_decline"
    assert Invoice.objects.get(owner=order.subject).status == "open"
    [intent] = charges_for(e2e, created["id"])
    assert intent["status"] == "requires_payment_method"
    # the decline is an outcome, not a job failure: nothing was retried
    assert set(JobRun.objects.values_list("status", "attempts")) == {("succeeded", 1)}


def test_idempotency_key_returns_the_same_order(client, e2e, catalogue, wait_for_order):
    body = {
        "email": "ada@example.com",
        "items": [{"sku": "TEA-EARL", "quantity": 1}],
        "payment_method": "pm_card_visa",
    }
    headers = {"Idempotency-Key": "checkout-7f3a"}
    first = client.post(
        "/api/orders", data=json.dumps(body), content_type="application/json", headers=headers
    )
    again = client.post(
        "/api/orders", data=json.dumps(body), content_type="application/json", headers=headers
    )
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]

    changed = {**body, "items": [{"sku": "TEA-EARL", "quantity": 5}]}
    conflict = client.post(
        "/api/orders", data=json.dumps(changed), content_type="application/json", headers=headers
    )
    assert conflict.status_code == 422
    assert "Idempotency-Key" in conflict.json()["errors"]

    wait_for_order(first.json()["id"], "completed")
    assert Order.objects.count() == 1
    assert len(charges_for(e2e, first.json()["id"])) == 1


def test_healthz_reports_database_broker_and_workers(client, e2e):
    response = client.get("/healthz")
    assert response.status_code == 200
    report = response.json()
    assert report["database"] == "ok"
    assert report["broker"] == "ok"
    assert report["workers"] == len(e2e.workers) == 1


def test_declined_order_can_be_paid_again_with_another_card(client, e2e, catalogue, wait_for_order):
    order_id = place(client, payment_method="pm_card_chargeDeclinedInsufficientFunds").json()["id"]
    wait_for_order(order_id, "payment_failed")
    assert (
        client.post(f"/api/orders/{order_id}/pay", data="{}", content_type="application/json").status_code
        == 400
    )

    response = client.post(f"/orders/{order_id}/", {"payment_method": "pm_card_visa"})
    assert response.status_code == 302
    wait_for_order(order_id, "completed")

    attempts = PaymentAttempt.objects.filter(invoice__owner=f"order:{order_id}").order_by("created_at")
    assert [(a.status, a.payment_method) for a in attempts] == [
        ("failed", "pm_card_chargeDeclinedInsufficientFunds"),
        ("succeeded", "pm_card_visa"),
    ]
    assert attempts[0].idempotency_key != attempts[1].idempotency_key
    assert [pi["status"] for pi in charges_for(e2e, order_id)] == ["requires_payment_method", "succeeded"]
    again = client.post(
        f"/api/orders/{order_id}/pay",
        data='{"payment_method": "pm_card_visa"}',
        content_type="application/json",
    )
    assert again.status_code == 409  # a completed order cannot be paid twice
