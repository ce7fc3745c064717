from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from billing.models import Invoice, InvoiceLine, PaymentAttempt


class InvoiceLineInline(admin.TabularInline):
    model = InvoiceLine
    extra = 0
    can_delete = False
    readonly_fields = ("description", "unit_price", "quantity")


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
    list_display = ("number", "owner", "email", "amount", "currency", "status", "paid_at", "created_at")
    list_filter = ("status",)
    search_fields = ("email", "owner")
    readonly_fields = ("number", "owner", "created_at", "paid_at")
    inlines = [InvoiceLineInline, PaymentAttemptInline]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Invoice], search_term: str
    ) -> tuple[QuerySet[Invoice], bool]:
        """Also by number, which is derived from the row (`Invoice.number`), so no column to search."""
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        return found | queryset.filter(Invoice.numbered(search_term.strip())), may_have_duplicates
