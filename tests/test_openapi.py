"""The API against its own OpenAPI document: schemathesis loads /api/openapi.json from the Django app
(in process, over WSGI) and sends every operation generated requests, valid and invalid.

Each request must get a documented answer: no 5xx, a documented status and content type, a body that
matches its schema, a 4xx for data the schema rules out, 405 for undocumented methods. Then the
stateful run follows the documented links (an order created, fetched, paid; a subscription created,
fetched).

Not checked: that a schema-valid request is accepted. A valid-looking order can still name an unknown
SKU or more than the stock, which no schema can say; those refusals are 400s the checks above cover.

The requests run in the test's transaction, which is rolled back: the jobs a create enqueues on commit
are never sent, so these tests need no broker and leave nothing behind.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir

from apikit.models import IdempotencyRecord
from billing.models import Invoice, InvoiceLine, PaymentAttempt
from devstack.runtime import VAR_DIR
from jobkit.models import JobRun
from orders.models import Order, OrderLine
from shop.factories import PLANS
from subscriptions.models import BillingPeriod, Subscription

set_hypothesis_home_dir(VAR_DIR / "hypothesis")  # its caches under var/, not in the checkout

CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {"max-examples": 100, "database": "none"},
        "checks": {"positive_data_acceptance": {"enabled": False}},
        # Mostly names that exist, so that orders and sign-ups get through to 202 and their links.
        "dictionaries": {
            "skus": {"values": ["TEA-EARL", "MUG-BLUE"]},  # the `catalogue` fixture's
            "plans": {"values": [code for code, *_ in PLANS]},
        },
        "parameters": {
            "body.items[*].sku": {"dictionary": "skus", "probability": 0.8},
            "body.plan": {"dictionary": "plans", "probability": 0.8},
        },
    }
)
# Loaded at import (the document needs no database). schemathesis.pytest.from_fixture, the lazy way,
# fails on pytest 9.2 in schemathesis 4.32.5 (it sets the private Function._nodeid).
schema = schemathesis.openapi.from_wsgi("/api/openapi.json", WSGIHandler(), config=CONFIG)

# The shop's data persists across a test's examples (an order may use up the stock): fine, and wanted.
KEEP_FIXTURES = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def shop(catalogue: list, plans: list) -> Iterator[None]:
    """A catalogue and plans to order from, and requests that stay in the test's transaction: like
    Django's test client, the handler must not close the connection of an open transaction."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def test_the_document_and_its_interactive_docs_are_served(client: Client) -> None:
    document = client.get("/api/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {
        "/api/products",
        "/api/orders",
        "/api/orders/{order_id}",
        "/api/orders/{order_id}/pay",
        "/api/plans",
        "/api/subscriptions",
        "/api/subscriptions/{subscription_id}",
    }
    docs = client.get("/api/docs")
    assert docs.status_code == 200 and b'"url": "/api/openapi.json"' in docs.content
    # Swagger UI from the shop's own static files (ninja in INSTALLED_APPS), so the docs work offline.
    assert client.get("/static/ninja/swagger-ui-bundle.js").status_code == 200


# Every table a request could write: a refused request (4xx) must leave each as it was.
WRITTEN = (Order, OrderLine, Invoice, InvoiceLine, PaymentAttempt, Subscription, BillingPeriod, JobRun,
           IdempotencyRecord)  # fmt: skip


def row_counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in WRITTEN}


@schema.parametrize()
@KEEP_FIXTURES
def test_every_operation_answers_as_documented(case: schemathesis.Case, shop: None) -> None:
    before = row_counts()
    response = case.call_and_validate()
    if 400 <= response.status_code < 500:
        assert row_counts() == before, f"a {response.status_code} wrote rows: {case.as_curl_command()}"


def test_links_between_operations_hold(shop: None) -> None:
    # Each step makes its request while Hypothesis draws the next: "slow generation" is the API working.
    slow_ok = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
    schema.as_state_machine().run(settings=settings(max_examples=30, suppress_health_check=slow_ok))
