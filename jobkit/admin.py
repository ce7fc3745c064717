from django.contrib import admin

from jobkit.models import JobRun


@admin.register(JobRun)
class JobRunAdmin(admin.ModelAdmin):
    list_display = ("name", "subject", "queue", "status", "attempts", "queued_at", "finished_at")
    list_filter = ("status", "queue", "name")
    search_fields = ("subject", "task_id", "name")
    readonly_fields = [f.name for f in JobRun._meta.fields]
