"""Checkout input validation, shared by the HTML checkout and the JSON API.

Prices never come from the request: only SKUs and quantities do, and both are checked against the
catalogue. Errors are keyed by field so both front ends can say exactly what is wrong.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings

from billing.forms import PaymentForm
from orders.checkout import CartLine
from orders.models import Product


class CustomerForm(PaymentForm):
    email = forms.EmailField(max_length=254)
    field_order = ["email", "payment_method"]


def validate_items(items: Any) -> tuple[list[CartLine], dict[str, list[str]]]:
    """Turn [{"sku", "quantity"}] into cart lines, or return errors keyed by `items[i].field`."""
    errors: dict[str, list[str]] = {}
    if not isinstance(items, list) or not items:
        return [], {"items": ["Give a non-empty list of {sku, quantity}."]}
    if len(items) > settings.SHOP_MAX_ORDER_LINES:
        return [], {"items": [f"At most {settings.SHOP_MAX_ORDER_LINES} lines per order."]}
    skus = [item.get("sku") for item in items if isinstance(item, dict)]
    # A NUL is in no SKU, and PostgreSQL refuses to even compare one (a 500 instead of "unknown product").
    known = [s for s in skus if isinstance(s, str) and "\x00" not in s]
    products = Product.objects.in_bulk(known, field_name="sku")
    wanted: dict[str, int] = {}
    lines: list[CartLine] = []
    for index, item in enumerate(items):
        where = f"items[{index}]"
        if not isinstance(item, dict):
            errors[where] = ["Each item must be an object with sku and quantity."]
            continue
        unknown = sorted(set(item) - {"sku", "quantity"})
        if unknown:  # e.g. a price smuggled into a line: refused, not ignored
            errors[where] = [f"Unknown field(s): {', '.join(unknown)}."]
        sku, quantity = item.get("sku"), item.get("quantity")
        product = products.get(sku) if isinstance(sku, str) else None
        if product is None or not product.active:
            errors[f"{where}.sku"] = [f"Unknown product {sku!r}."]
        # bool is an int in Python; a JSON true is not a quantity.
        if not isinstance(quantity, int) or isinstance(quantity, bool):
            errors[f"{where}.quantity"] = ["Quantity must be a whole number."]
        elif not 1 <= quantity <= settings.SHOP_MAX_LINE_QUANTITY:
            errors[f"{where}.quantity"] = [
                f"Quantity must be between 1 and {settings.SHOP_MAX_LINE_QUANTITY}."
            ]
        elif product is not None and product.active:
            wanted[product.sku] = wanted.get(product.sku, 0) + quantity
            if wanted[product.sku] > product.stock:
                errors[f"{where}.quantity"] = [f"Only {product.stock} of {product.sku} in stock."]
            else:
                lines.append(CartLine(product, quantity))
    if not errors and len({line.product.currency for line in lines}) > 1:
        errors["items"] = ["All items must be in the same currency."]
    return (lines, {}) if not errors else ([], errors)
