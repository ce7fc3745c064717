from __future__ import annotations

from django.db import models


class JobRun(models.Model):
    """One job message through its life, recorded against the business object it works on.

    The row is written in the same transaction that enqueues the job, so a rolled-back request leaves
    no ghost "queued" job, and a committed one is visible before any worker can pick it up.
    """

    class Status(models.TextChoices):
        QUEUED = "queued"
        STARTED = "started"
        RETRYING = "retrying"
        SUCCEEDED = "succeeded"
        DEAD = "dead"
        REQUEUED = "requeued"  # was dead or lost; sent again as a new job
        # committed, message not sent: staged by the web for the relay, or refused by a broker that was down;
        # the relay or the recovery sweep sends it
        UNSENT = "unsent"

    # A job in one of these states is expected to make progress (and to update `updated_at`).
    LIVE_STATUSES = (Status.QUEUED, Status.STARTED, Status.RETRYING)

    task_id = models.CharField(max_length=64)
    name = models.CharField(max_length=100)
    queue = models.CharField(max_length=40)
    subject = models.CharField(max_length=80, help_text="kind:id of the object the job works on")
    args = models.JSONField(default=list)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveIntegerField(default=0, help_text="times a worker started it")
    retries = models.PositiveIntegerField(default=0, help_text="retry budget spent (deferrals spend none)")
    last_error = models.TextField(blank=True)
    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    next_retry_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True, help_text="last sign of life (the sweeper reads it)")

    class Meta:
        ordering = ["queued_at", "id"]
        # Declared here rather than as unique=True and db_index=True on the fields: on PostgreSQL those add
        # a second index each, for LIKE, which no query of the timeline needs, and every job's insert and
        # status updates write to (a status update changes an indexed column, so it writes every index).
        constraints = [models.UniqueConstraint(fields=["task_id"], name="jobrun_task_id_unique")]
        indexes = [
            models.Index(fields=["status", "queued_at"]),
            models.Index(fields=["subject"], name="jobrun_subject"),
        ]

    def __str__(self) -> str:
        return f"{self.name}[{self.task_id[:8]}] {self.status}"

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "queue": self.queue,
            "status": self.status,
            "attempts": self.attempts,
            "retries": self.retries,
            "queued_at": self.queued_at.isoformat() if self.queued_at else None,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "next_retry_at": self.next_retry_at.isoformat() if self.next_retry_at else None,
            "last_error": self.last_error,
        }


class DeadJob(JobRun):
    """Dead letters: jobs that failed for good (retries exhausted, or an error retrying cannot fix)."""

    class Meta:
        proxy = True
        verbose_name = "dead job"


class JobExecution(models.Model):
    """Unique execution: a key inserted in the same transaction as a job's effects.

    The unique constraint, not a check-then-insert, decides which run goes ahead: a concurrent run
    blocks on the insert and fails once the first commits; if the first rolls back, the key is free.
    """

    key = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    result = models.JSONField(default=dict, blank=True, help_text="what the one run did")

    class Meta:
        # A constraint rather than unique=True: on PostgreSQL that adds a second index, for LIKE, which no
        # look-up of a key needs and every claim writes to.
        constraints = [models.UniqueConstraint(fields=["key"], name="jobexecution_key_unique")]

    def __str__(self) -> str:
        return self.key


class ClockAdvance(models.Model):
    """One move forward of the shop clock (`jobkit/clock.py`): demos and tests skip ahead in time."""

    seconds = models.FloatField(help_text="how far the clock moved forward")
    reason = models.CharField(max_length=200, blank=True)
    at = models.DateTimeField(auto_now_add=True, help_text="real time of the move")

    class Meta:
        ordering = ["at", "id"]
        constraints = [models.CheckConstraint(condition=models.Q(seconds__gt=0), name="clock_moves_forward")]

    def __str__(self) -> str:
        return f"+{self.seconds:g}s ({self.reason})"
