"""The Stripe-compatible API as the official SDK sees it."""

from __future__ import annotations

import pytest
import stripe

from sandbox.testing import SandboxProcess


def test_module_level_api_base_creates_and_confirms(
    sandbox: SandboxProcess, api_key: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(stripe, "api_key", api_key)
    monkeypatch.setattr(stripe, "api_base", sandbox.api_base)
    monkeypatch.setattr(stripe, "max_network_retries", 0)

    customer = stripe.Customer.create(email="ada@example.com", metadata={"shop_id": "7"})
    intent = stripe.PaymentIntent.create(
        amount=2500,
        currency="EUR",
        customer=customer.id,
        payment_method="pm_card_visa",
        metadata={"order": "42"},
    )
    assert intent.id.startswith("pi_") and intent.status == "requires_confirmation"
    assert (
        intent.currency == "eur" and intent.metadata.to_dict() == {"order": "42"} and intent.livemode is False
    )

    confirmed = stripe.PaymentIntent.confirm(intent.id)
    assert confirmed.status == "succeeded" and confirmed.amount_received == 2500
    assert confirmed.latest_charge.startswith("ch_")
    assert sandbox.payment_intents() == [
        {
            "id": intent.id,
            "amount": 2500,
            "currency": "eur",
            "status": "succeeded",
            "metadata": {"order": "42"},
            "created": intent.created,
            "customer": customer.id,
            "latest_charge": confirmed.latest_charge,
            "last_payment_error": None,
        }
    ]
    assert stripe.Customer.retrieve(customer.id).metadata.to_dict() == {"shop_id": "7"}


def test_client_create_confirm_retrieve_and_charge(client: stripe.StripeClient):
    intent = client.v1.payment_intents.create(
        {"amount": 1999, "currency": "usd", "payment_method": "pm_card_mastercard", "confirm": True}
    )
    assert intent.status == "succeeded" and intent.object == "payment_intent"

    fetched = client.v1.payment_intents.retrieve(intent.id)
    assert fetched.to_dict() == intent.to_dict()
    charge = client.v1.charges.retrieve(intent.latest_charge)
    assert (charge.amount, charge.amount_refunded, charge.refunded) == (1999, 0, False)
    assert charge.payment_intent == intent.id
    assert charge.payment_method_details.card.brand == "mastercard"

    method = client.v1.payment_methods.retrieve("pm_card_visa")
    assert (method.card.brand, method.card.last4) == ("visa", "4242")


def test_list_is_newest_first_paginates_and_filters_by_customer(client: stripe.StripeClient):
    alice = client.v1.customers.create({"name": "Alice"})
    bob = client.v1.customers.create({"name": "Bob"})
    mine = [
        client.v1.payment_intents.create({"amount": 100 + i, "currency": "eur", "customer": alice.id}).id
        for i in range(5)
    ]
    client.v1.payment_intents.create({"amount": 999, "currency": "eur", "customer": bob.id})
    newest_first = list(reversed(mine))

    first = client.v1.payment_intents.list({"customer": alice.id, "limit": 2})
    assert [pi.id for pi in first.data] == newest_first[:2] and first.has_more
    assert first.url == "/v1/payment_intents"
    after = client.v1.payment_intents.list(
        {"customer": alice.id, "limit": 2, "starting_after": first.data[-1].id}
    )
    assert [pi.id for pi in after.data] == newest_first[2:4]
    before = client.v1.payment_intents.list(
        {"customer": alice.id, "limit": 2, "ending_before": after.data[0].id}
    )
    assert [pi.id for pi in before.data] == newest_first[:2]

    everything = client.v1.payment_intents.list({"customer": alice.id, "limit": 2}).auto_paging_iter()
    assert [pi.id for pi in everything] == newest_first
    assert len(client.v1.payment_intents.list().data) == 6  # default limit 10

    with pytest.raises(stripe.InvalidRequestError) as error:
        client.v1.payment_intents.list({"limit": 101})
    assert error.value.param == "limit"


@pytest.mark.parametrize(
    ("method", "code", "decline_code"),
    [
        ("pm_card_chargeDeclined", "card_declined", "generic_decline"),
        ("pm_card_chargeDeclinedInsufficientFunds", "card_declined", "insufficient_funds"),
        ("pm_card_chargeDeclinedExpiredCard", "expired_card", "expired_card"),
    ],
)
def test_decline_raises_card_error_carrying_the_payment_intent(
    client: stripe.StripeClient, method: str, code: str, decline_code: str
):
    with pytest.raises(stripe.CardError) as raised:
        client.v1.payment_intents.create(
            {"amount": 500, "currency": "eur", "payment_method": method, "confirm": True}
        )
    error = raised.value
    assert error.http_status == 402 and error.code == code
    assert error.error.decline_code == decline_code and error.error.type == "card_error"
    intent = error.error.payment_intent
    assert intent.id.startswith("pi_") and intent.status == "requires_payment_method"
    assert intent.last_payment_error.code == code

    # The failed intent can be retried with a good card, as on Stripe.
    retried = client.v1.payment_intents.confirm(intent.id, {"payment_method": "pm_card_visa"})
    assert retried.status == "succeeded" and retried.last_payment_error is None


def test_validation_errors_name_the_param(client: stripe.StripeClient):
    cases = [
        ({"amount": 0, "currency": "eur"}, "amount"),
        ({"amount": "ten", "currency": "eur"}, "amount"),
        ({"amount": 100}, "currency"),
        ({"amount": 100, "currency": "eur", "payment_method": "pm_card_unknown"}, "payment_method"),
        ({"amount": 100, "currency": "eur", "customer": "cus_missing"}, "customer"),
    ]
    for params, param in cases:
        with pytest.raises(stripe.InvalidRequestError) as error:
            client.v1.payment_intents.create(params)
        assert (error.value.http_status, error.value.param) == (400, param), params
    with pytest.raises(stripe.InvalidRequestError) as error:
        client.v1.payment_intents.create({"amount": 1, "currency": "eur", "payment_method": "pm_card_nope"})
    assert error.value.code == "resource_missing"
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.payment_intents.retrieve("pi_missing")
    assert missing.value.http_status == 404
    assert client.v1.payment_intents.list().data == []  # none of the invalid requests created anything


def test_requires_a_secret_key(sandbox: SandboxProcess):
    with pytest.raises(stripe.AuthenticationError) as error:
        stripe.StripeClient("pk_test_public", base_addresses={"api": sandbox.api_base}).v1.customers.create()
    assert error.value.http_status == 401


def test_refunds_track_the_remaining_amount(sandbox: SandboxProcess, client: stripe.StripeClient):
    intent = client.v1.payment_intents.create(
        {"amount": 1000, "currency": "eur", "payment_method": "pm_card_visa", "confirm": True}
    )
    first = client.v1.refunds.create({"payment_intent": intent.id, "amount": 300})
    assert (first.amount, first.status, first.charge) == (300, "succeeded", intent.latest_charge)
    charge = client.v1.charges.retrieve(intent.latest_charge)
    assert (charge.amount_refunded, charge.refunded) == (300, False)

    with pytest.raises(stripe.InvalidRequestError) as too_large:
        client.v1.refunds.create({"payment_intent": intent.id, "amount": 701})
    assert (too_large.value.code, too_large.value.param) == ("amount_too_large", "amount")

    rest = client.v1.refunds.create({"charge": intent.latest_charge})  # default: all that remains
    assert rest.amount == 700
    charge = client.v1.charges.retrieve(intent.latest_charge)
    assert (charge.amount_refunded, charge.refunded) == (1000, True)

    with pytest.raises(stripe.InvalidRequestError) as exhausted:
        client.v1.refunds.create({"payment_intent": intent.id})
    assert exhausted.value.code == "charge_already_refunded"

    assert [r.id for r in client.v1.refunds.list().data] == [rest.id, first.id]
    assert client.v1.refunds.retrieve(first.id).amount == 300
    assert [(r["id"], r["amount"]) for r in sandbox.refunds()] == [(first.id, 300), (rest.id, 700)]


def test_events_record_successes_failures_and_refunds(client: stripe.StripeClient):
    paid = client.v1.payment_intents.create(
        {"amount": 800, "currency": "eur", "payment_method": "pm_card_visa", "confirm": True}
    )
    with pytest.raises(stripe.CardError):
        client.v1.payment_intents.create(
            {"amount": 900, "currency": "eur", "payment_method": "pm_card_chargeDeclined", "confirm": True}
        )
    client.v1.refunds.create({"payment_intent": paid.id, "amount": 200})

    events = client.v1.events.list().data
    assert [e.type for e in events] == [
        "charge.refunded",
        "payment_intent.payment_failed",
        "payment_intent.succeeded",
    ]
    refunded = client.v1.events.list({"type": "charge.refunded"}).data
    assert len(refunded) == 1 and refunded[0].data.object.amount_refunded == 200
    succeeded = client.v1.events.retrieve(events[-1].id)
    assert succeeded.data.object.id == paid.id and succeeded.data.object.status == "succeeded"
