"""The Stripe webhook endpoint's gate: nothing is stored unless Stripe signed this very body, recently;
and a signed payment event is applied only to the payment attempt it matches, amount and currency.

Signatures are built here the way Stripe builds them, not with the SDK the endpoint verifies with, so a
mistake in how the endpoint calls the SDK cannot cancel out.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from typing import Any

import hypothesis
import pytest
import stripe
from hypothesis import strategies as st

from billing.models import PaymentAttempt, StripeEvent
from orders.checkout import CartLine, write_order
from orders.models import Order, Product

pytestmark = pytest.mark.django_db

SECRET = "whsec_signature_tests_0123456789"
URL = "/webhooks/stripe"


@pytest.fixture(autouse=True)
def webhook_secret(settings) -> None:
    settings.STRIPE_WEBHOOK_SECRET = SECRET


def stripe_signature(payload: bytes, secret: str = SECRET, timestamp: int | None = None) -> str:
    """`t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<payload>" keyed with the endpoint secret>`."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def event(event_id: str = "evt_1SigTest0001", event_type: str = "customer.created") -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "data": {"object": {"id": "cus_1SigTest0001", "object": "customer", "email": "ada@example.com"}},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


def post(client, body: bytes, signature: str | None):
    headers = {} if signature is None else {"Stripe-Signature": signature}
    return client.post(URL, data=body, content_type="application/json", headers=headers)


BODY = json.dumps(event()).encode()
NOT_AN_EVENT = json.dumps({"id": "evt_1", "type": "charge.refunded"}).encode()
# Stripe's metadata holds strings only; an invoice number that is not one must not reach the look-up.
NUMBER_NOT_TEXT = json.dumps(
    event(event_type="payment_intent.succeeded")
    | {
        "data": {
            "object": {"id": "pi_1", "status": "succeeded", "amount": 850, "currency": "eur",
                       "metadata": {"invoice_number": 1234567}}
        }
    }
).encode()  # fmt: skip


def stale_signature(payload: bytes) -> str:
    return stripe_signature(payload, timestamp=int(time.time()) - stripe.Webhook.DEFAULT_TOLERANCE - 60)


# Each case signs at run time (`sign(body)`), so a long suite run cannot turn a valid signature stale.
@pytest.mark.parametrize(
    ("body", "sign", "field", "problem"),
    [
        pytest.param(BODY, lambda body: None, "Stripe-Signature", "missing", id="missing-header"),
        pytest.param(
            BODY, lambda body: "sha256=deadbeef", "Stripe-Signature", "unable to extract", id="garbled-header"
        ),
        pytest.param(
            BODY,
            lambda body: stripe_signature(body, secret="whsec_someone_else"),
            "Stripe-Signature",
            "no signatures found matching",
            id="wrong-secret",
        ),
        pytest.param(
            BODY.replace(b"ada@example.com", b"eve@example.com"),
            lambda body: stripe_signature(BODY),
            "Stripe-Signature",
            "no signatures found matching",
            id="tampered-body",
        ),
        pytest.param(BODY, stale_signature, "Stripe-Signature", "tolerance", id="stale-timestamp"),
        pytest.param(b"not json {", stripe_signature, "body", "not json", id="not-json"),
        pytest.param(b"\xff\xfe{}", stripe_signature, "body", "not utf-8", id="not-utf8"),
        pytest.param(b"[]", stripe_signature, "body", "not a stripe event", id="json-array"),
        pytest.param(NOT_AN_EVENT, stripe_signature, "body", "not a stripe event", id="event-without-data"),
        pytest.param(
            NUMBER_NOT_TEXT, stripe_signature, "data.object", "metadata holds strings", id="metadata-not-text"
        ),
    ],
)
def test_rejected_with_400_naming_the_problem_and_nothing_stored(client, body, sign, field, problem):
    response = post(client, body, sign(body))
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert list(errors) == [field]
    assert problem in errors[field][0].lower()
    assert not StripeEvent.objects.exists()


def test_a_signed_event_is_stored_once_and_a_redelivery_is_a_duplicate(client):
    first = post(client, BODY, stripe_signature(BODY))
    assert first.status_code == 200
    assert first.json() == {"received": True}
    [stored] = StripeEvent.objects.all()
    assert (stored.event_id, stored.type) == ("evt_1SigTest0001", "customer.created")
    assert stored.payload == json.loads(BODY)
    assert stored.processed_at is not None

    # Stripe signs each delivery attempt afresh: a later timestamp, the same event id.
    again = post(client, BODY, stripe_signature(BODY, timestamp=int(time.time()) + 1))
    assert again.status_code == 200
    assert again.json() == {"received": True, "duplicate": True}
    assert StripeEvent.objects.get() == stored
    assert StripeEvent.objects.get().processed_at == stored.processed_at


def test_a_payment_event_the_shop_cannot_match_is_stored_and_changes_nothing(client, catalogue):
    order = write_order(
        email="ada@example.com",
        lines=[CartLine(Product.objects.get(sku="TEA-EARL"), 1)],
        payment_method="pm_card_visa",
    )
    pending = PaymentAttempt.objects.create(
        invoice=order.invoice, amount=order.total, currency=order.currency, payment_method="pm_card_visa"
    )
    # Succeeded intents the shop did not make: one without the shop's metadata, one for another invoice
    # (this invoice's id, of another year).
    for n, metadata in enumerate([{}, {"invoice_number": f"INV-1999-{order.invoice.pk:07d}"}]):
        intent = {
            "id": f"pi_1Foreign{n}",
            "object": "payment_intent",
            "status": "succeeded",
            "amount": 999,
            "currency": "eur",
            "metadata": metadata,
        }
        body = json.dumps(
            event(event_id=f"evt_1Foreign{n}", event_type="payment_intent.succeeded")
            | {"data": {"object": intent}}
        ).encode()
        response = post(client, body, stripe_signature(body))
        assert response.status_code == 200
        assert response.json() == {"received": True}
    assert StripeEvent.objects.filter(processed_at__isnull=False).count() == 2
    pending.refresh_from_db()
    assert (pending.status, pending.gateway_reference) == ("pending", "")
    order.refresh_from_db()
    assert order.status == "placed"


def placed_order_with_pending_attempt() -> tuple[Order, PaymentAttempt]:
    order = write_order(
        email="ada@example.com",
        lines=[CartLine(Product.objects.get(sku="TEA-EARL"), 1)],
        payment_method="pm_card_visa",
    )
    attempt = PaymentAttempt.objects.create(
        invoice=order.invoice, amount=order.total, currency=order.currency, payment_method="pm_card_visa"
    )
    return order, attempt


def succeeded_event(attempt: PaymentAttempt, **intent_fields: Any) -> bytes:
    """A signed-to-be payment_intent.succeeded for this attempt's invoice, as the gateway would send it."""
    intent = {
        "id": "pi_1Settle0001",
        "object": "payment_intent",
        "status": "succeeded",
        "amount": attempt.amount_minor,
        "currency": attempt.currency.lower(),  # Stripe's currencies are lower case
        "metadata": attempt.invoice.payment_metadata(),
    } | intent_fields
    return json.dumps(
        event(event_id="evt_1Settle0001", event_type="payment_intent.succeeded")
        | {"data": {"object": intent}}
    ).encode()


def test_a_payment_event_matching_its_attempt_is_applied(client, catalogue):
    _, attempt = placed_order_with_pending_attempt()
    body = succeeded_event(attempt)
    response = post(client, body, stripe_signature(body))
    assert response.json() == {"received": True}
    attempt.refresh_from_db()
    assert (attempt.status, attempt.gateway_reference) == ("succeeded", "pi_1Settle0001")
    assert attempt.invoice.status == "paid"


@pytest.mark.parametrize(
    ("differs", "is_for"),
    [
        pytest.param(
            lambda a: {"amount": a.amount_minor - 100}, lambda a: f"{a.amount_minor - 100} eur", id="amount"
        ),
        pytest.param(lambda a: {"currency": "usd"}, lambda a: f"{a.amount_minor} usd", id="currency"),
    ],
)
def test_a_payment_event_whose_amount_or_currency_differs_is_not_applied(
    client, catalogue, caplog, differs, is_for
):
    order, attempt = placed_order_with_pending_attempt()
    body = succeeded_event(attempt, **differs(attempt))
    with caplog.at_level(logging.ERROR, logger="billing.webhooks"):
        response = post(client, body, stripe_signature(body))

    mismatch = (
        f"payment intent pi_1Settle0001 is for {is_for(attempt)}, but payment attempt {attempt.public_id} "
        f"of invoice {order.invoice.number} is for {attempt.amount_minor} eur"
    )
    assert response.status_code == 200  # answered, so Stripe does not retry an event that cannot match
    assert response.json() == {"received": True, "ignored": mismatch}
    assert (
        f"Stripe event evt_1Settle0001 (payment_intent.succeeded) not applied: {mismatch}" in caplog.messages
    )
    attempt.refresh_from_db()
    assert (attempt.status, attempt.gateway_reference) == ("pending", "")
    order.refresh_from_db()
    assert (order.status, order.invoice.status) == ("placed", "open")
    assert StripeEvent.objects.get().processed_at is not None  # stored: a redelivery is a duplicate


# --- property-based: whatever arrives, never a 5xx, and a refusal stores nothing ---------------------
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
EVENT_LIKE = st.fixed_dictionaries(
    {
        "id": st.text(max_size=70),
        "type": st.sampled_from(["payment_intent.succeeded", "charge.refunded", "x"]),
    },
    optional={"data": st.fixed_dictionaries({"object": JSON}), "created": st.integers()},
)


@hypothesis.settings(max_examples=150, suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture])
@hypothesis.given(
    body=st.binary(max_size=300) | JSON.map(lambda v: json.dumps(v).encode()), signed=st.booleans()
)
def test_any_body_signed_or_not_is_answered_without_a_5xx(client, db, body: bytes, signed: bool):
    stored = StripeEvent.objects.count()
    response = post(client, body, stripe_signature(body) if signed else None)
    assert response.status_code < 500
    if response.status_code >= 400:
        assert StripeEvent.objects.count() == stored


@hypothesis.settings(max_examples=150, suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture])
@hypothesis.given(payload=EVENT_LIKE)
def test_signed_event_shaped_bodies_never_5xx(client, db, payload: dict[str, Any]):
    body = json.dumps(payload).encode()
    stored = StripeEvent.objects.count()
    response = post(client, body, stripe_signature(body))
    assert response.status_code < 500, response.content
    if response.status_code >= 400:
        assert StripeEvent.objects.count() == stored


def test_a_charge_event_is_judged_by_the_fields_its_reconciliation_reads(client):
    # A refund's reconciliation reads no metadata: whatever a charge's metadata holds, it is not a 500.
    charge = {"id": "ch_1", "payment_intent": "pi_1", "amount_refunded": 850, "metadata": ["not", "a", "map"]}
    body = json.dumps(event(event_type="charge.refunded") | {"data": {"object": charge}}).encode()
    response = post(client, body, stripe_signature(body))
    assert response.status_code == 200
    assert StripeEvent.objects.count() == 1
