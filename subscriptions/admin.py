from django.contrib import admin

from subscriptions.models import BillingBatch, BillingRun, Subscription


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ("public_id", "email", "plan", "status", "step", "current_period_end", "created_at")
    list_filter = ("status", "step", "plan")
    search_fields = ("public_id", "email", "request_key")
    readonly_fields = ("public_id", "request_key", "created_at", "updated_at")


class BillingBatchInline(admin.TabularInline):
    model = BillingBatch
    extra = 0
    can_delete = False
    readonly_fields = ("number", "after_id", "last_id", "status", "billed", "failed", "amount")


@admin.register(BillingRun)
class BillingRunAdmin(admin.ModelAdmin):
    list_display = (
        "billing_date",
        "status",
        "batches_done",
        "batches_total",
        "subscriptions_billed",
        "amount_billed",
    )
    readonly_fields = [f.name for f in BillingRun._meta.fields]
    inlines = [BillingBatchInline]
