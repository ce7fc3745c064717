"""Every HTML form is CSRF-protected: a POST without the form's token is a 403 and changes nothing.

Each case first opens the page that shows the form (so the browser holds the CSRF cookie: only the
token is missing), posts without the token, then posts again with the token read from that page's
form, which must work: the 403 is the token's doing, and the template really renders one.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from orders.checkout import CartLine, write_order
from orders.models import Order, Product
from shop import chaos_panel, sandbox_faults
from subscriptions.models import BillingRun, Plan, Subscription
from subscriptions.signup import sign_up

pytestmark = pytest.mark.django_db

TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@dataclass
class Form:
    page: str  # the page that shows the form
    action: str  # where the form posts
    data: dict[str, str]
    state: Callable[[], Any]  # what a successful POST changes


def put_in_cart(browser: Client, **cart: int) -> None:
    session = browser.session
    session["cart"] = cart
    session.save()


def cart_state(browser: Client) -> Callable[[], Any]:
    return lambda: browser.session.get("cart")


def add_to_cart(browser: Client, request: pytest.FixtureRequest) -> Form:
    data = {"sku": "TEA-EARL", "quantity": "2"}
    return Form("/products/TEA-EARL/", "/cart/add/", data, cart_state(browser))


def update_cart(browser: Client, request: pytest.FixtureRequest) -> Form:
    put_in_cart(browser, **{"TEA-EARL": 3})
    return Form("/cart/", "/cart/update/", {"qty-TEA-EARL": "1"}, cart_state(browser))


def checkout(browser: Client, request: pytest.FixtureRequest) -> Form:
    put_in_cart(browser, **{"TEA-EARL": 1})
    data = {"email": "ada@example.com", "payment_method": "pm_card_visa"}
    return Form("/checkout/", "/checkout/", data, lambda: Order.objects.count())


def subscribe(browser: Client, request: pytest.FixtureRequest) -> Form:
    data = {"email": "ada@example.com", "plan": "tea-monthly", "payment_method": "pm_card_visa"}
    return Form("/subscribe/", "/subscribe/", data, lambda: Subscription.objects.count())


def cancel_subscription(browser: Client, request: pytest.FixtureRequest) -> Form:
    subscription = sign_up(
        email="ada@example.com",
        plan=Plan.objects.get(code="tea-monthly"),
        payment_method="pm_card_visa",
        request_key="csrf-test",
    )
    Subscription.objects.filter(pk=subscription.pk).update(status=Subscription.Status.ACTIVE)
    url = f"/subscriptions/{subscription.public_id}/"
    return Form(url, url, {}, lambda: Subscription.objects.get(pk=subscription.pk).cancel_at_period_end)


def pay_again(browser: Client, request: pytest.FixtureRequest) -> Form:
    order = write_order(
        email="ada@example.com",
        lines=[CartLine(Product.objects.get(sku="TEA-EARL"), 1)],
        payment_method="pm_card_chargeDeclined",
    )
    Order.objects.filter(pk=order.pk).update(status=Order.Status.PAYMENT_FAILED)
    url = f"/orders/{order.public_id}/"
    return Form(url, url, {"payment_method": "pm_card_visa"}, lambda: Order.objects.get(pk=order.pk).status)


def log_in_ops(browser: Client, request: pytest.FixtureRequest) -> None:
    """A superuser (every permission: this file is about CSRF); /ops/ reads the session's broker."""
    settings = request.getfixturevalue("settings")
    settings.REDIS_URL = settings.CELERY_BROKER_URL = request.getfixturevalue("broker_url")
    browser.force_login(get_user_model().objects.create_superuser("ops", "ops@example.com", "pw-test"))


def start_billing_run(browser: Client, request: pytest.FixtureRequest) -> Form:
    log_in_ops(browser, request)
    data = {"bill_date": datetime.date(2030, 1, 1).isoformat()}
    return Form("/ops/", "/ops/", data, lambda: BillingRun.objects.count())


def switch_sandbox_outage(browser: Client, request: pytest.FixtureRequest) -> Form:
    log_in_ops(browser, request)
    # A sandbox that records the switch instead of a real one: this test is about the form, not the call.
    switched: list[tuple[str, bool]] = []
    monkeypatch = request.getfixturevalue("monkeypatch")
    monkeypatch.setattr(sandbox_faults, "faults", lambda: {"payments": {"outage": False}})
    monkeypatch.setattr(sandbox_faults, "set_outage", lambda service, on: switched.append((service, on)))
    request.getfixturevalue("settings").SANDBOX_URL = "http://sandbox.invalid"
    return Form("/ops/", "/ops/", {"service": "payments", "outage": "on"}, lambda: list(switched))


def start_chaos_campaign(browser: Client, request: pytest.FixtureRequest) -> Form:
    log_in_ops(browser, request)
    # A recording launcher, and a panel folder of the test's own so no campaign is found running.
    started: list[tuple[int | None, str]] = []
    monkeypatch = request.getfixturevalue("monkeypatch")
    monkeypatch.setattr(chaos_panel, "FOLDER", request.getfixturevalue("tmp_path"))
    monkeypatch.setattr(chaos_panel, "start", lambda seed, preset: started.append((seed, preset)))
    return Form("/ops/", "/ops/chaos/", {"seed": "7", "preset": "small"}, lambda: list(started))


FORMS = [
    add_to_cart,
    update_cart,
    checkout,
    subscribe,
    cancel_subscription,
    pay_again,
    start_billing_run,
    switch_sandbox_outage,
    start_chaos_campaign,
]


@pytest.mark.parametrize("make_form", FORMS, ids=[f.__name__ for f in FORMS])
def test_a_form_post_without_its_csrf_token_is_refused_and_changes_nothing(
    make_form, request, catalogue, plans
):
    browser = Client(enforce_csrf_checks=True)
    form = make_form(browser, request)
    page = browser.get(form.page)
    assert page.status_code == 200
    assert "csrftoken" in browser.cookies  # so the 403 below is for the missing token alone
    before = form.state()

    refused = browser.post(form.action, form.data)
    assert refused.status_code == 403
    assert b"CSRF token missing" in refused.content
    assert form.state() == before

    token = TOKEN.search(page.content.decode())
    assert token, "the page's form carries no CSRF token"
    accepted = browser.post(form.action, {**form.data, "csrfmiddlewaretoken": token.group(1)})
    assert accepted.status_code == 302
    assert form.state() != before
