from django.contrib import admin

from orders.models import Order, OrderLine, Product


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("sku", "name", "price", "currency", "stock", "active")
    list_editable = ("stock", "active")
    search_fields = ("sku", "name")


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    extra = 0
    readonly_fields = ("product", "sku", "name", "unit_price", "quantity")
    can_delete = False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("public_id", "email", "status", "total", "currency", "created_at")
    list_filter = ("status",)
    search_fields = ("public_id", "email")
    readonly_fields = ("public_id", "created_at", "updated_at")
    inlines = [OrderLineInline]
