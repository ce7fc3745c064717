"""Order pages: thin views over orders/checkout.py (writes) and orders/selectors.py (reads)."""

from __future__ import annotations

from django.contrib import messages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from billing.forms import PaymentForm
from jobkit import clock
from jobkit.selectors import timeline
from notifications.selectors import reminders_for
from orders import checkout
from orders.models import Product
from orders.selectors import get_order, order_is_final
from shipping.services import shipment_for


@require_http_methods(["GET", "POST"])
def order_page(request: HttpRequest, order_id: str) -> HttpResponse:
    """The order's status and job timeline; a `payment_failed` order can be paid again from here."""
    order = get_order(order_id)
    pay_again = PaymentForm(request.POST or None, initial={"payment_method": order.payment_method})
    if request.method == "POST" and pay_again.is_valid():
        try:
            checkout.pay_again(order_id, pay_again.cleaned_data["payment_method"])
        except checkout.NotPayable as exc:
            messages.error(request, str(exc))
        return redirect("order-page", order_id=order.public_id)
    jobs = timeline(order.subject)
    context = {
        "order": order,
        "shipment": shipment_for(str(order.public_id)),
        "jobs": jobs.jobs,
        "dead_jobs": jobs.dead,
        "final": order_is_final(order),
        "pay_again": pay_again,
        "reminders": reminders_for(order.subject),
        "shop_now": clock.now(),
    }
    return render(request, "orders/order.html", context, status=400 if pay_again.errors else 200)


@require_GET
def invoice_pdf(request: HttpRequest, order_id: str) -> FileResponse:
    """The invoice PDF for whoever holds the order's unguessable URL (the guest checkout's owner)."""
    invoice = getattr(get_order(order_id), "invoice", None)
    if invoice is None or not invoice.pdf:
        raise Http404("The invoice PDF is not ready yet.")
    return FileResponse(
        invoice.pdf.open("rb"), content_type="application/pdf", filename=f"{invoice.number}.pdf"
    )


def product_list(request: HttpRequest) -> HttpResponse:
    return render(request, "orders/catalogue.html", {"products": Product.objects.filter(active=True)})


def product_detail(request: HttpRequest, sku: str) -> HttpResponse:
    product = get_object_or_404(Product, sku=sku, active=True)
    return render(request, "orders/product.html", {"product": product})
