"""Pattern 5: reminders are database rows with a due time, claimed by a beat job with SKIP LOCKED,
and every send re-checks the state first. Offsets are seconds here (REMINDER_OFFSETS in conftest)."""

from __future__ import annotations

import json

import pytest

from notifications.models import Reminder
from orders.models import Product
from tests.conftest import REMINDER_OFFSETS
from tests.harness import wait_for

pytestmark = pytest.mark.e2e


def declined_order(client) -> str:
    body = {"email": "ada@example.com", "items": [{"sku": "MUG-BLUE", "quantity": 2}]}
    body["payment_method"] = "pm_card_chargeDeclined"
    return client.post("/api/orders", data=json.dumps(body), content_type="application/json").json()["id"]


def reminder_mails(sandbox) -> list[dict]:
    return [m for m in sandbox.mail_messages() if m["subject"].startswith("Reminder")]


def test_three_reminders_in_order_once_each_then_the_order_expires(
    client, workers, catalogue, wait_for_order
):
    workers.add_worker("second-worker")
    workers.add_beat("beat-1")
    workers.add_beat("beat-2")  # a second scheduler, as after a careless deploy: still one send per reminder
    order_id = declined_order(client)
    wait_for_order(order_id, "payment_failed")
    assert Product.objects.get(sku="MUG-BLUE").stock == 3  # reserved while the customer may still pay

    wait_for_order(order_id, "expired", timeout=sum(REMINDER_OFFSETS) + 30)
    mails = reminder_mails(workers.sandbox)
    assert [m["subject"].split(":")[0] for m in mails] == ["Reminder 1", "Reminder 2", "Reminder 3"]
    assert [m["received_at"] for m in mails] == sorted(m["received_at"] for m in mails)
    assert set(Reminder.objects.values_list("status", flat=True)) == {"sent"}
    assert Product.objects.get(sku="MUG-BLUE").stock == 5  # released on expiry
    assert client.get(f"/api/orders/{order_id}").json()["invoice"]["status"] == "void"


def test_paying_before_the_second_reminder_stops_the_rest(client, workers, catalogue, wait_for_order):
    workers.add_beat("beat-1")
    order_id = declined_order(client)
    wait_for_order(order_id, "payment_failed")
    wait_for(lambda: reminder_mails(workers.sandbox), REMINDER_OFFSETS[0] + 15, workers.logs)

    response = client.post(
        f"/api/orders/{order_id}/pay",
        data=json.dumps({"payment_method": "pm_card_visa"}),
        content_type="application/json",
    )
    assert response.status_code == 202
    wait_for_order(order_id, "completed")
    wait_for(  # let the later reminders come due
        lambda: not Reminder.objects.filter(status="pending").exists(),
        REMINDER_OFFSETS[-1] + 15,
        workers.logs,
    )
    assert len(reminder_mails(workers.sandbox)) == 1
    assert sorted(Reminder.objects.values_list("sequence", "status")) == [
        (1, "sent"),
        (2, "skipped"),
        (3, "skipped"),
    ]
