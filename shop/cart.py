"""The session cart: {sku: quantity}. Prices are always read from the catalogue, never stored here."""

from __future__ import annotations

from django.http import HttpRequest

SESSION_KEY = "cart"


def get_cart(request: HttpRequest) -> dict[str, int]:
    cart = request.session.get(SESSION_KEY, {})
    return {sku: qty for sku, qty in cart.items() if isinstance(qty, int) and qty > 0}


def save_cart(request: HttpRequest, cart: dict[str, int]) -> None:
    request.session[SESSION_KEY] = {sku: qty for sku, qty in cart.items() if qty > 0}


def cart_items(request: HttpRequest) -> list[dict[str, object]]:
    """The cart in the shape the order validation takes."""
    return [{"sku": sku, "quantity": qty} for sku, qty in get_cart(request).items()]
