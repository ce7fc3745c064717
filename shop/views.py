"""Storefront (cart, checkout), the health check, the staff ops page and the page of a refused form."""

from __future__ import annotations

import datetime

import redis
from django.conf import settings
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import Count, Min
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from jobkit import clock
from jobkit.breaker import SERVICES, breaker_for
from jobkit.models import ClockAdvance, JobRun
from jobkit.selectors import timeline
from orders.checkout import place_order
from orders.forms import CustomerForm, validate_items
from orders.models import Product
from shop import chaos_panel, sandbox_faults
from shop.cart import cart_items, get_cart, save_cart
from shop.celery import QUEUES, app
from subscriptions import renewals
from subscriptions.jobs import bill_batch
from subscriptions.models import BillingRun, Subscription

START_BILLING_RUN = "subscriptions.add_billingrun"
SWITCH_SANDBOX_FAULTS = "shop.switch_sandbox_faults"  # shop.models.OpsPermission
ADVANCE_CLOCK = "shop.advance_clock"  # shop.models.OpsPermission
RUN_CHAOS = "shop.run_chaos"  # shop.models.OpsPermission
CLOCK_STEPS = {"1h": datetime.timedelta(hours=1), "1d": datetime.timedelta(days=1)}


@require_POST
def cart_add(request: HttpRequest) -> HttpResponse:
    sku = request.POST.get("sku", "")
    try:
        quantity = int(request.POST.get("quantity", "1"))
    except ValueError:
        quantity = 0
    product = Product.objects.filter(sku=sku, active=True).first()
    if product is None or not 1 <= quantity <= settings.SHOP_MAX_LINE_QUANTITY:
        limit = settings.SHOP_MAX_LINE_QUANTITY
        messages.error(request, f"Choose a product and a quantity between 1 and {limit}.")
        return redirect("catalogue")
    cart = get_cart(request)
    cart[sku] = min(cart.get(sku, 0) + quantity, settings.SHOP_MAX_LINE_QUANTITY)
    save_cart(request, cart)
    messages.success(request, f"Added {quantity} x {product.name} to your cart.")
    return redirect("cart")


@require_POST
def cart_update(request: HttpRequest) -> HttpResponse:
    cart = get_cart(request)
    for sku in list(cart):
        try:
            cart[sku] = max(
                0, min(int(request.POST.get(f"qty-{sku}", cart[sku])), settings.SHOP_MAX_LINE_QUANTITY)
            )
        except ValueError:
            messages.error(request, f"Quantity for {sku} must be a whole number.")
    save_cart(request, cart)
    return redirect("cart")


@require_GET
def cart_page(request: HttpRequest) -> HttpResponse:
    return render(request, "shop/cart.html", cart_context(request))


def cart_context(request: HttpRequest) -> dict[str, object]:
    cart = get_cart(request)
    products = Product.objects.in_bulk(list(cart), field_name="sku")
    rows = [
        {"product": products[sku], "quantity": qty, "total": products[sku].price * qty}
        for sku, qty in cart.items()
        if sku in products
    ]
    return {"rows": rows, "total": sum(r["total"] for r in rows)}


@require_http_methods(["GET", "POST"])
def checkout(request: HttpRequest) -> HttpResponse:
    if not get_cart(request):
        messages.info(request, "Your cart is empty.")
        return redirect("catalogue")
    form = CustomerForm(request.POST or None)
    item_errors: dict[str, list[str]] = {}
    if request.method == "POST":
        lines, item_errors = validate_items(cart_items(request))
        if form.is_valid() and not item_errors:
            order = place_order(lines=lines, **form.cleaned_data)
            save_cart(request, {})
            return redirect("order-page", order_id=order.public_id)
    context = {"form": form, "item_errors": item_errors, **cart_context(request)}
    return render(request, "shop/checkout.html", context, status=400 if request.method == "POST" else 200)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: the shop's 403 page with Django's reason, which its own page shows only in DEBUG."""
    message = f"The form was refused: {reason} Reload the page and send the form again."
    return render(request, "403.html", {"exception": message}, status=403)


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    report: dict[str, object] = {}
    healthy = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        report["database"] = "ok"
    except Exception as exc:
        report["database"], healthy = f"error: {exc}", False
    try:
        redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=2, socket_connect_timeout=2).ping()
        report["broker"] = "ok"
        report["workers"] = len(app.control.ping(timeout=0.5) or [])
    except Exception as exc:
        report["broker"], report["workers"], healthy = f"error: {exc}", 0, False
    return JsonResponse(report, status=200 if healthy else 503)


@staff_member_required
@require_http_methods(["GET", "POST"])
def ops(request: HttpRequest) -> HttpResponse:
    """Staff view of the machinery: breakers, queues, job states, and the sandbox's fault switches."""
    if request.method == "POST" and "bill_date" in request.POST:
        require_permission(request, START_BILLING_RUN, "start a billing run")
        try:
            run, created = renewals.start_run(datetime.date.fromisoformat(request.POST["bill_date"].strip()))
            messages.success(
                request, f"{'Started' if created else 'Joined'} the billing run for {run.billing_date}."
            )
        except ValueError:
            messages.error(request, "Give the billing date as YYYY-MM-DD.")
        return redirect("ops")
    if request.method == "POST" and "clock" in request.POST:
        require_permission(request, ADVANCE_CLOCK, "move the shop clock")
        advance_clock(request, request.POST["clock"])
        return redirect("ops")
    if request.method == "POST":
        require_permission(request, SWITCH_SANDBOX_FAULTS, "switch the sandbox's faults")
        switch_outage(request)
        return redirect("ops")
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=2)
    context = {
        "breakers": [breaker_for(service).snapshot(transitions=5) for service in SERVICES],
        "sandbox": sandbox_panel(),
        "queues": [(queue, broker.llen(queue)) for queue in QUEUES],
        "job_counts": JobRun.objects.values("status").annotate(count=Count("id")).order_by("status"),
        "recent_jobs": JobRun.objects.order_by("-updated_at")[:20],
        "billing_runs": BillingRun.objects.order_by("-billing_date")[:5],
        "latest_run_jobs": latest_run_batch_jobs(),
        "today": clock.today(),
        "clock": {"now": clock.now(), "ahead": clock.offset(), "advances": ClockAdvance.objects.all()},
        "can_move_clock": settings.CLOCK_CAN_ADVANCE,
        "next_billing_date": next_billing_date(),
        "chaos": chaos_panel.status() if settings.CHAOS_PANEL else None,
        "chaos_presets": chaos_panel.PRESETS,
    }
    return render(request, "shop/ops.html", context)


@staff_member_required
@require_http_methods(["GET", "POST"])
def ops_chaos(request: HttpRequest) -> HttpResponse:
    """The chaos panel's campaign: GET, its progress as JSON; POST, start one (not while one runs)."""
    if request.method == "GET":
        return JsonResponse(chaos_panel.status())
    require_permission(request, RUN_CHAOS, "start a chaos campaign")
    seed, preset = request.POST.get("seed", "").strip(), request.POST.get("preset", "")
    if seed and not seed.isdigit():
        messages.error(request, f"The seed must be a whole number, or blank for a random one; got {seed!r}.")
    elif preset not in chaos_panel.PRESETS:
        messages.error(request, f"Unknown size {preset!r}; expected one of {', '.join(chaos_panel.PRESETS)}.")
    else:
        try:
            chaos_panel.start(int(seed) if seed else None, preset)
            messages.success(request, f"Started a {preset} chaos campaign; its progress is below.")
        except chaos_panel.Busy as exc:
            messages.error(request, str(exc))
    return redirect("ops")


def advance_clock(request: HttpRequest, step: str) -> None:
    """+1 hour, +1 day, or to the next billing date: reminders and renewals come due in minutes."""
    if step == "next_billing":
        due = next_billing_date()
        if due is None:
            messages.error(request, "No active subscription renews after today.")
            return
        by, reason = datetime.timedelta(days=(due - clock.today()).days), f"to the next billing date {due}"
    elif step in CLOCK_STEPS:
        by, reason = CLOCK_STEPS[step], f"+{step} from /ops/"
    else:
        messages.error(request, f"Unknown clock step {step!r}; expected 1h, 1d or next_billing.")
        return
    try:
        clock.advance(by, reason)
    except clock.ClockLocked as exc:
        messages.error(request, str(exc))
        return
    messages.success(request, f"Shop clock moved forward {reason}: it is now {clock.now():%Y-%m-%d %H:%M}.")


def next_billing_date() -> datetime.date | None:
    """The first date after the shop's today on which an active subscription renews."""
    upcoming = Subscription.objects.filter(
        status=Subscription.Status.ACTIVE, current_period_end__gt=clock.today()
    ).aggregate(first=Min("current_period_end"))
    return upcoming["first"]


def require_permission(request: HttpRequest, permission: str, action: str) -> None:
    """Being staff opens the ops page; each action on it needs its own permission (a 403 naming it)."""
    if not request.user.has_perm(permission):
        raise PermissionDenied(f"To {action} you need the permission {permission}.")


def switch_outage(request: HttpRequest) -> None:
    service, outage = request.POST.get("service", ""), request.POST.get("outage") == "on"
    if not sandbox_faults.configured():
        messages.error(request, "No sandbox is configured (SANDBOX_URL): there are no faults to switch.")
    elif service not in SERVICES:
        messages.error(request, f"Unknown service {service!r}.")
    else:
        try:
            sandbox_faults.set_outage(service, outage)
            messages.success(request, f"Sandbox {service}: outage {'on' if outage else 'off'}.")
        except sandbox_faults.SandboxError as exc:
            messages.error(request, f"The sandbox did not take it: {exc}")


def sandbox_panel() -> dict[str, object] | None:
    """The fault switches' state, or None when no sandbox is configured."""
    if not sandbox_faults.configured():
        return None
    try:
        faults = sandbox_faults.faults()
    except sandbox_faults.SandboxError as exc:
        return {"url": settings.SANDBOX_URL, "error": str(exc)}
    # Only the shop's outside services: the sandbox's webhook faults have no breaker and no switch here.
    return {"url": settings.SANDBOX_URL, "faults": {s: faults[s] for s in SERVICES if s in faults}}


def latest_run_batch_jobs() -> list[JobRun]:
    """The latest billing run's batch jobs, for the same timeline chart the order pages draw."""
    run = BillingRun.objects.order_by("-started_at").first()
    if run is None:
        return []
    subjects = [bill_batch.subject_for([pk]) for pk in run.batches.values_list("pk", flat=True)]
    return timeline(run.subject, *subjects).jobs
