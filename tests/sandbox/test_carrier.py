"""The carrier API: shipments and subscription-box registrations."""

from __future__ import annotations

import requests

from sandbox.testing import SandboxProcess

SHIPMENT = {"reference": "order-42", "address": "1 Main St, Springfield", "items": [{"sku": "MUG", "qty": 2}]}


def post(sandbox: SandboxProcess, path: str, body: dict, key: str | None = None) -> requests.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return requests.post(f"{sandbox.api_base}/carrier/v1/{path}", json=body, headers=headers, timeout=5)


def test_without_a_key_every_post_books_another_shipment(sandbox: SandboxProcess):
    first, second = post(sandbox, "shipments", SHIPMENT), post(sandbox, "shipments", SHIPMENT)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]
    shipment = first.json()
    assert (
        shipment["id"].startswith("shp_")
        and shipment["status"] == "requested"
        and shipment["tracking_number"]
    )
    assert [s["reference"] for s in sandbox.shipments()] == ["order-42", "order-42"]


def test_with_a_key_a_repeat_returns_the_same_shipment(sandbox: SandboxProcess):
    first = post(sandbox, "shipments", SHIPMENT, key="ship-order-42")
    again = post(sandbox, "shipments", SHIPMENT, key="ship-order-42")
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert len(sandbox.shipments()) == 1

    fetched = requests.get(f"{sandbox.api_base}/carrier/v1/shipments/{first.json()['id']}", timeout=5)
    assert fetched.status_code == 200 and fetched.json() == first.json()
    assert requests.get(f"{sandbox.api_base}/carrier/v1/shipments/shp_nope", timeout=5).status_code == 404


def test_bad_input_names_the_field(sandbox: SandboxProcess):
    for body, field in [
        ({**SHIPMENT, "address": ""}, "address"),
        ({"address": "x", "items": []}, "reference"),
        ({**SHIPMENT, "items": "MUG"}, "items"),
    ]:
        answer = post(sandbox, "shipments", body)
        assert answer.status_code == 400 and answer.json()["error"]["field"] == field
    assert sandbox.shipments() == []


def test_registrations_can_be_rejected_created_and_cancelled(sandbox: SandboxProcess):
    body = {"reference": "sub-7", "address": "1 Main St", "plan": "monthly-coffee"}
    sandbox.set_fault("carrier", reject_registrations=True)
    rejected = post(sandbox, "registrations", body, key="register-sub-7")
    assert rejected.status_code == 422 and "error" in rejected.json()
    assert sandbox.stats()["carrier"]["rejected"] == 1

    sandbox.set_fault("carrier", reject_registrations=False)
    created = post(sandbox, "registrations", body, key="register-sub-7")  # a rejection saved nothing
    assert created.status_code == 201 and created.json()["id"].startswith("reg_")

    registration_id = created.json()["id"]
    cancelled = requests.delete(f"{sandbox.api_base}/carrier/v1/registrations/{registration_id}", timeout=5)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert [(r["id"], r["status"]) for r in sandbox.registrations()] == [(registration_id, "cancelled")]


def test_outage_answers_503(sandbox: SandboxProcess):
    sandbox.set_fault("carrier", outage=True)
    answer = post(sandbox, "shipments", SHIPMENT)
    assert answer.status_code == 503 and answer.json()["error"]["code"] == "service_unavailable"
    assert sandbox.shipments() == [] and sandbox.stats()["carrier"]["rejected"] == 1
