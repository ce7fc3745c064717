from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from jobkit import dead_letters
from jobkit.models import DeadJob, JobRun

READ_ONLY = [f.name for f in JobRun._meta.fields]


@admin.register(JobRun)
class JobRunAdmin(admin.ModelAdmin):
    list_display = ("name", "subject", "queue", "status", "attempts", "queued_at", "finished_at")
    list_filter = ("status", "queue", "name")
    search_fields = ("subject", "task_id", "name")
    readonly_fields = READ_ONLY


@admin.register(DeadJob)
class DeadJobAdmin(admin.ModelAdmin):
    list_display = ("name", "subject", "queue", "attempts", "finished_at", "last_error")
    list_filter = ("name", "queue")
    search_fields = ("subject", "task_id", "last_error")
    readonly_fields = READ_ONLY
    actions = ["requeue"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[DeadJob]:
        return super().get_queryset(request).filter(status=JobRun.Status.DEAD)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    # Viewing dead letters is not enough to send them again: the action needs change permission.
    @admin.action(description="Re-enqueue the selected dead jobs", permissions=["change"])
    def requeue(self, request: HttpRequest, queryset: QuerySet[DeadJob]) -> None:
        count = dead_letters.requeue(queryset)
        self.message_user(request, f"Re-enqueued {count} job(s).", messages.SUCCESS)
