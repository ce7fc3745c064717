"""The JSON API: one NinjaAPI mounted at /api/ (shop/urls.py), with a router per app, its OpenAPI 3
document at /api/openapi.json and interactive docs at /api/docs.

Every refusal has one shape, `{"errors": {field: [messages]}}`: the handlers below give ninja's own
checks (headers, path parameters) and a missing object that shape too.

CSRF: ninja exempts its views from Django's CSRF middleware and checks CSRF only for cookie-based auth.
The API uses no auth and reads no cookie or session: a client proves nothing but its knowledge of an
unguessable id, so there is no ambient credential a forged cross-site request could ride on. The HTML
forms keep Django's CSRF protection (tests/test_csrf.py).
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import ValidationError

from apikit.tools import ApiError
from orders.api import router as orders_router
from subscriptions.api import router as subscriptions_router

api = NinjaAPI(
    title="Job Shop API",
    version="1",
    description="Orders and subscriptions whose work runs in background jobs. Creates answer 202 once "
    "committed; follow the returned `url` or GET the resource to watch its jobs.",
    urls_namespace="api",
)
api.add_router("", orders_router)
api.add_router("", subscriptions_router)


@api.exception_handler(ApiError)
def refused(request: HttpRequest, exc: ApiError) -> HttpResponse:
    return api.create_response(request, {"errors": exc.errors}, status=exc.status)


@api.exception_handler(ValidationError)
def invalid_parameter(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    """A header or path parameter that ninja checked (bodies are checked by the forms): a 400 naming it."""
    errors: dict[str, list[str]] = {}
    for error in exc.errors:
        field = ".".join(str(part) for part in error["loc"][1:])  # loc[0] is where: "header", "path"
        errors.setdefault(field, []).append(error["msg"])
    return api.create_response(request, {"errors": errors}, status=400)


@api.exception_handler(Http404)
def not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return api.create_response(request, {"errors": {"id": [str(exc)]}}, status=404)
