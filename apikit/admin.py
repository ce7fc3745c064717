from django.contrib import admin

from apikit.models import IdempotencyRecord


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(admin.ModelAdmin):
    list_display = ("scope", "key", "resource_id", "created_at")
    search_fields = ("key", "resource_id")
    readonly_fields = ("scope", "key", "fingerprint", "resource_id", "created_at")
