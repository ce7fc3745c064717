"""CSRF: exactly two kinds of endpoint are exempt, each for its reason (HTML forms: tests/test_csrf.py)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

# Route prefix -> why a forged cross-site POST to it can do no harm without a CSRF token.
EXEMPT = {
    "api/": "the JSON API uses no auth and reads no cookie or session: a cross-site request carries no "
    "credential to ride on (ninja exempts its views and checks CSRF only for cookie-based auth)",
    "webhooks/stripe": "Stripe's servers post it; the Stripe-Signature header, verified before anything "
    "is stored, is the proof of origin",
}


def routes(patterns: list, prefix: str = "") -> Iterator[tuple[str, Callable]]:
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from routes(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            yield route, pattern.callback


def test_only_the_json_api_and_the_stripe_webhook_are_csrf_exempt(db):
    exempt = [
        route for route, view in routes(get_resolver().url_patterns) if getattr(view, "csrf_exempt", False)
    ]
    for route in exempt:
        assert any(route.startswith(prefix) for prefix in EXEMPT), (
            f"{route} is CSRF-exempt for no known reason"
        )
    for prefix, reason in EXEMPT.items():
        assert any(route.startswith(prefix) for route in exempt), f"{prefix} should be exempt: {reason}"


def test_the_api_declares_no_cookie_or_session_auth(client, db):
    document = client.get("/api/openapi.json").json()
    assert "securitySchemes" not in document["components"]
    operations = [op for path in document["paths"].values() for op in path.values()]
    assert operations and not any("security" in op for op in operations)


@pytest.fixture
def strict_client() -> Client:
    return Client(enforce_csrf_checks=True)


def test_the_api_needs_no_csrf_token(strict_client, catalogue):
    body = {
        "email": "ada@example.com",
        "items": [{"sku": "TEA-EARL", "quantity": 1}],
        "payment_method": "pm_card_visa",
    }
    response = strict_client.post("/api/orders", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 202
