from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from subscriptions import renewals
from subscriptions.models import BillingBatch, BillingRun, Plan, Subscription


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
    actions = ["retry_failed_batches"]

    @admin.action(description="Retry the failed batches (each alone)", permissions=["change"])
    def retry_failed_batches(self, request: HttpRequest, queryset: QuerySet[BillingRun]) -> None:
        count = sum(renewals.retry_failed_batches(run.pk) for run in queryset)
        self.message_user(request, f"Re-enqueued {count} failed batch(es).", messages.SUCCESS)


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "price", "currency", "interval", "active")
