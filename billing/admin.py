from django.contrib import admin

from billing.models import Invoice, PaymentAttempt, Plan


class PaymentAttemptInline(admin.TabularInline):
    model = PaymentAttempt
    extra = 0
    can_delete = False
    readonly_fields = (
        "public_id",
        "amount",
        "currency",
        "payment_method",
        "status",
        "gateway_reference",
        "failure_code",
        "failure_message",
        "created_at",
        "completed_at",
    )


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    list_display = ("number", "email", "amount", "currency", "status", "paid_at", "created_at")
    list_filter = ("status",)
    search_fields = ("number", "email")
    readonly_fields = ("number", "order", "created_at", "paid_at")
    inlines = [PaymentAttemptInline]


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "price", "currency", "interval", "active")
