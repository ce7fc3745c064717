from django.conf import settings
from django.contrib import admin
from django.urls import path

from billing.webhooks import stripe_webhook
from orders import views as orders
from shop import views as storefront
from shop.api import api
from subscriptions import views as subscriptions

urlpatterns = [
    path("", orders.product_list, name="catalogue"),
    path("products/<str:sku>/", orders.product_detail, name="product"),
    path("cart/", storefront.cart_page, name="cart"),
    path("cart/add/", storefront.cart_add, name="cart-add"),
    path("cart/update/", storefront.cart_update, name="cart-update"),
    path("checkout/", storefront.checkout, name="checkout"),
    path("orders/<str:order_id>/", orders.order_page, name="order-page"),
    path("orders/<str:order_id>/invoice.pdf", orders.invoice_pdf, name="invoice-pdf"),
    path("subscribe/", subscriptions.subscribe, name="subscribe"),
    path("subscriptions/<str:subscription_id>/", subscriptions.subscription_page, name="subscription-page"),
    path("healthz", storefront.healthz, name="healthz"),
    path("ops/", storefront.ops, name="ops"),
    path("api/", api.urls),  # the JSON API; its OpenAPI document at /api/openapi.json, docs at /api/docs
    path("webhooks/stripe", stripe_webhook, name="stripe-webhook"),
    path("admin/", admin.site.urls),
]

if settings.CHAOS_PANEL:  # never in production (shop/chaos_panel.py)
    urlpatterns.append(path("ops/chaos/", storefront.ops_chaos, name="ops-chaos"))

if settings.SHOP_BENCHMARK_ENDPOINTS:  # baselines for `make bench`; never on in the demo or production
    from benchmarks import views as bench

    urlpatterns.append(path("bench/", bench.api.urls))
