from django.contrib import admin

from notifications.models import Notification


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("kind", "subject", "recipient", "status", "attempts", "sent_at")
    list_filter = ("kind", "status")
    search_fields = ("subject", "recipient")
    readonly_fields = [f.name for f in Notification._meta.fields]
