from django.http import HttpRequest

from shop.cart import get_cart


def cart(request: HttpRequest) -> dict[str, int]:
    return {"cart_count": sum(get_cart(request).values()) if hasattr(request, "session") else 0}
