"""Bad sign-up input: a 400 naming the field, and nothing written."""

from __future__ import annotations

import json

import pytest

from apikit.models import IdempotencyRecord
from billing.models import Invoice
from jobkit.models import JobRun
from subscriptions.models import Subscription

GOOD = {"email": "ada@example.com", "plan": "tea-monthly", "payment_method": "pm_card_visa"}

BAD = [
    ("unknown plan", {**GOOD, "plan": "caviar-daily"}, "plan"),
    ("plan wrong type", {**GOOD, "plan": 3}, "plan"),
    ("plan missing", {k: v for k, v in GOOD.items() if k != "plan"}, "plan"),
    ("bad email", {**GOOD, "email": "ada"}, "email"),
    ("unknown card", {**GOOD, "payment_method": "pm_card_stolen"}, "payment_method"),
    ("price smuggled in", {**GOOD, "price": "0.01"}, "body"),
]


@pytest.mark.parametrize(("case", "body", "field"), BAD, ids=[c[0] for c in BAD])
def test_bad_sign_up_is_refused_naming_the_field(client, plans, case, body, field):
    response = client.post("/api/subscriptions", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    for model in (Subscription, Invoice, JobRun, IdempotencyRecord):
        assert not model.objects.exists()


def test_an_idempotency_key_of_255_characters_is_taken_and_replayed(client, plans):
    def sign_up():
        return client.post(
            "/api/subscriptions",
            data=json.dumps(GOOD),
            content_type="application/json",
            headers={"Idempotency-Key": "k" * 255},
        )

    first, again = sign_up(), sign_up()  # on PostgreSQL, a key that overflowed a column was a 500
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert Subscription.objects.count() == 1


def test_plans_api_lists_the_plans(client, plans):
    assert client.get("/api/plans").json()[0] == {
        "code": "tea-monthly",
        "name": "Tea of the month",
        "price": "19.00",
        "currency": "EUR",
        "interval": "month",
    }


def test_unknown_subscription_is_not_found(client, db):
    assert client.get("/api/subscriptions/nope").status_code == 404
    assert client.get("/subscriptions/00000000-0000-0000-0000-000000000000/").status_code == 404


def test_double_submitted_subscribe_form_makes_one_subscription(client, plans):
    form = {
        "email": "ada@example.com",
        "plan": "tea-monthly",
        "payment_method": "pm_card_visa",
        "request_key": "k1",
    }
    first, second = client.post("/subscribe/", form), client.post("/subscribe/", form)
    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"]
    assert Subscription.objects.count() == 1 and Invoice.objects.count() == 1


def test_subscribe_form_with_unknown_plan_writes_nothing(client, plans):
    form = {"email": "ada@example.com", "plan": "nope", "payment_method": "pm_card_visa", "request_key": "k2"}
    response = client.post("/subscribe/", form)
    assert response.status_code == 400 and b"Unknown plan" in response.content
    assert not Subscription.objects.exists()


def test_only_an_active_subscription_can_be_cancelled(client, plans):
    form = {
        "email": "ada@example.com",
        "plan": "tea-monthly",
        "payment_method": "pm_card_visa",
        "request_key": "k3",
    }
    page = client.post("/subscribe/", form)["Location"]
    refused = client.post(page, follow=True)  # still pending: the sign-up has not finished
    assert b"Only an active subscription can be cancelled" in refused.content
    Subscription.objects.update(status=Subscription.Status.ACTIVE)
    client.post(page)
    assert Subscription.objects.get().cancel_at_period_end is True
