"""Reads of the job timeline, for pages and APIs."""

from __future__ import annotations

from dataclasses import dataclass

from jobkit.models import JobRun


@dataclass(frozen=True)
class Timeline:
    """Every job run recorded against one subject, oldest first."""

    jobs: list[JobRun]

    @property
    def dead(self) -> list[JobRun]:
        return [job for job in self.jobs if job.status == JobRun.Status.DEAD]

    @property
    def busy(self) -> bool:
        """Some job of the subject is still queued, running or waiting to retry."""
        return any(job.status in JobRun.LIVE_STATUSES for job in self.jobs)

    def as_dicts(self) -> list[dict[str, object]]:
        return [job.as_dict() for job in self.jobs]


def timeline(*subjects: str) -> Timeline:
    """The jobs of one subject, or of several (a billing run's batches), oldest first."""
    return Timeline(list(JobRun.objects.filter(subject__in=subjects)))
