"""Bad input to the order API and the checkout form: a 400 naming the field, and nothing written."""

from __future__ import annotations

import json

import pytest

from apikit.models import IdempotencyRecord
from billing.models import Invoice
from jobkit.models import JobRun
from orders.models import Order, OrderLine

GOOD = {
    "email": "ada@example.com",
    "items": [{"sku": "TEA-EARL", "quantity": 2}],
    "payment_method": "pm_card_visa",
}


def post_order(client, body, **headers):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post("/api/orders", data=data, content_type="application/json", headers=headers)


def assert_nothing_written() -> None:
    counts = {
        model.__name__: model.objects.count()
        for model in (Order, OrderLine, Invoice, JobRun, IdempotencyRecord)
    }
    assert counts == dict.fromkeys(counts, 0)


def with_(**changes):
    return {**GOOD, **changes}


BAD_BODIES = [
    ("unknown sku", with_(items=[{"sku": "NOPE", "quantity": 1}]), "items[0].sku"),
    ("quantity zero", with_(items=[{"sku": "TEA-EARL", "quantity": 0}]), "items[0].quantity"),
    ("quantity negative", with_(items=[{"sku": "TEA-EARL", "quantity": -3}]), "items[0].quantity"),
    ("quantity absurd", with_(items=[{"sku": "TEA-EARL", "quantity": 10**9}]), "items[0].quantity"),
    ("more than stock", with_(items=[{"sku": "MUG-BLUE", "quantity": 6}]), "items[0].quantity"),
    (
        "stock exceeded across lines",
        with_(items=[{"sku": "MUG-BLUE", "quantity": 3}, {"sku": "MUG-BLUE", "quantity": 3}]),
        "items[1].quantity",
    ),
    ("quantity as string", with_(items=[{"sku": "TEA-EARL", "quantity": "2"}]), "items[0].quantity"),
    ("quantity as float", with_(items=[{"sku": "TEA-EARL", "quantity": 1.5}]), "items[0].quantity"),
    ("quantity as bool", with_(items=[{"sku": "TEA-EARL", "quantity": True}]), "items[0].quantity"),
    ("sku as number", with_(items=[{"sku": 12, "quantity": 1}]), "items[0].sku"),
    ("sku with a NUL", with_(items=[{"sku": "TEA-EARL\x00", "quantity": 1}]), "items[0].sku"),
    ("item not an object", with_(items=["TEA-EARL"]), "items[0]"),
    ("items empty", with_(items=[]), "items"),
    ("items not a list", with_(items={"sku": "TEA-EARL"}), "items"),
    ("items missing", {k: v for k, v in GOOD.items() if k != "items"}, "items"),
    ("email missing", {k: v for k, v in GOOD.items() if k != "email"}, "email"),
    ("email invalid", with_(email="not-an-email"), "email"),
    ("email wrong type", with_(email=["a@example.com"]), "email"),
    ("payment method unknown", with_(payment_method="pm_card_stolen"), "payment_method"),
    ("payment method missing", {k: v for k, v in GOOD.items() if k != "payment_method"}, "payment_method"),
    ("price smuggled in", with_(price="0.01"), "body"),
    (
        "price smuggled into an item",
        with_(items=[{"sku": "TEA-EARL", "quantity": 1, "price": "0.01"}]),
        "items[0]",
    ),
]


@pytest.mark.parametrize(("case", "body", "field"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
def test_bad_order_is_refused_naming_the_field(client, catalogue, case, body, field):
    response = post_order(client, body)
    assert response.status_code == 400, response.content
    assert field in response.json()["errors"], response.json()
    assert_nothing_written()


@pytest.mark.parametrize(
    ("raw", "content_type", "status"),
    [
        ("{not json", "application/json", 400),
        ("[1, 2]", "application/json", 400),
        ('"a string"', "application/json", 400),
        (b"\xff\xfe", "application/json", 400),
        ("email=a@example.com", "application/x-www-form-urlencoded", 415),
    ],
)
def test_malformed_body_is_refused(client, catalogue, raw, content_type, status):
    response = client.post("/api/orders", data=raw, content_type=content_type)
    assert response.status_code == status
    assert "body" in response.json()["errors"]
    assert_nothing_written()


def test_overlong_idempotency_key_is_refused(client, catalogue):
    response = post_order(client, GOOD, **{"Idempotency-Key": "k" * 256})
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["errors"]
    assert_nothing_written()


def test_checkout_form_with_bad_email_writes_nothing(client, catalogue):
    client.post("/cart/add/", {"sku": "TEA-EARL", "quantity": "1"})
    response = client.post("/checkout/", {"email": "nope", "payment_method": "pm_card_visa"})
    assert response.status_code == 400
    assert b"Enter a valid email address" in response.content
    assert_nothing_written()


def test_checkout_form_with_unknown_card_writes_nothing(client, catalogue):
    client.post("/cart/add/", {"sku": "TEA-EARL", "quantity": "1"})
    response = client.post("/checkout/", {"email": "ada@example.com", "payment_method": "pm_card_forged"})
    assert response.status_code == 400
    assert b"Select a valid choice" in response.content
    assert_nothing_written()


def test_products_api_lists_the_catalogue_with_decimal_string_prices(client, catalogue):
    response = client.get("/api/products")
    assert response.status_code == 200
    assert response.json() == [
        {"sku": "MUG-BLUE", "name": "Blue mug", "price": "14.00", "currency": "EUR", "stock": 5},
        {"sku": "TEA-EARL", "name": "Earl Grey", "price": "8.50", "currency": "EUR", "stock": 50},
    ]


@pytest.mark.parametrize("order_id", ["1", "not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_unknown_or_sequential_order_ids_are_not_found(client, catalogue, order_id):
    assert client.get(f"/api/orders/{order_id}").status_code == 404
    assert client.get(f"/orders/{order_id}/").status_code == 404


def test_healthz_names_the_broker_when_it_is_down(client, db, settings):
    from devstack.processes import free_port

    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    response = client.get("/healthz")
    assert response.status_code == 503
    report = response.json()
    assert report["database"] == "ok"
    assert report["broker"].startswith("error")


def test_ops_page_is_for_staff_only(client, db, django_user_model):
    assert client.get("/ops/").status_code == 302  # to the login page
    client.force_login(django_user_model.objects.create_user("customer", password="x"))
    assert client.get("/ops/").status_code == 302


def test_ops_refuses_an_unknown_fault_switch(client, db, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("staff", "s@example.com", "x"))
    response = client.post("/ops/", {"service": "teleporter", "outage": "on"}, follow=True)
    assert b"Unknown service" in response.content


def nested(depth: int) -> str:
    """An order whose items are lists nested `depth` deep."""
    return '{"email": "ada@example.com", "items": ' + "[" * depth + "]" * depth + "}"


@pytest.mark.parametrize("depth", [40, 100_000], ids=["past our limit", "past the parser's recursion"])
def test_deeply_nested_body_is_refused(client, catalogue, depth):
    response = post_order(client, nested(depth))
    assert response.status_code == 400
    assert "nested deeper than" in response.json()["errors"]["body"][0]
    assert_nothing_written()


@pytest.mark.parametrize(
    "body",
    ['{"email": "ada@example.com"}'.encode("utf-16"), '{"email": "adà@example.com"}'.encode("latin-1")],
    ids=["utf-16", "latin-1"],
)
def test_body_that_is_not_utf8_is_refused(client, catalogue, body):
    response = post_order(client, body)
    assert response.status_code == 400
    assert "not UTF-8" in response.json()["errors"]["body"][0]
    assert_nothing_written()


def test_body_over_the_upload_limit_gets_a_json_413(client, catalogue, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    big = with_(email="a" * 1000 + "@example.com")
    response = post_order(client, big)
    assert response.status_code == 413
    assert response.json()["errors"]["body"] == ["The body is larger than 1000 bytes."]
    assert_nothing_written()


@pytest.mark.parametrize("path", ["/api/orders", "/api/subscriptions"])
@pytest.mark.parametrize("content_type", ["text/plain", "multipart/form-data; boundary=x", ""])
def test_body_that_is_not_declared_json_gets_415(client, catalogue, path, content_type):
    response = client.post(path, data=json.dumps(GOOD), content_type=content_type)
    assert response.status_code == 415
    assert "body" in response.json()["errors"]
    assert_nothing_written()


@pytest.mark.parametrize("key", ["", "k" * 256], ids=["empty", "256 characters"])
def test_idempotency_key_outside_1_to_255_characters_is_refused(client, catalogue, key):
    response = post_order(client, GOOD, **{"Idempotency-Key": key})
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["errors"]
    assert_nothing_written()


def test_paying_again_refuses_unknown_fields(client, catalogue):
    order_id = post_order(client, GOOD).json()["id"]
    Order.objects.update(status=Order.Status.PAYMENT_FAILED)
    jobs_before = JobRun.objects.count()
    pay = f"/api/orders/{order_id}/pay"

    smuggled = {"payment_method": "pm_card_visa", "amount": "0.01"}
    response = client.post(pay, data=json.dumps(smuggled), content_type="application/json")
    assert response.status_code == 400
    assert response.json()["errors"] == {"body": ["Unknown field(s): amount."]}
    assert Order.objects.get().status == Order.Status.PAYMENT_FAILED
    assert JobRun.objects.count() == jobs_before

    accepted = client.post(pay, data='{"payment_method": "pm_card_visa"}', content_type="application/json")
    assert accepted.status_code == 202  # the same order, asked properly, could be paid
