from django.contrib import admin

from shipping.models import Shipment


@admin.register(Shipment)
class ShipmentAdmin(admin.ModelAdmin):
    list_display = ("reference", "carrier_reference", "tracking_number", "requested_at")
    search_fields = ("reference", "carrier_reference", "tracking_number")
    readonly_fields = ("reference", "carrier_reference", "tracking_number", "requested_at")
