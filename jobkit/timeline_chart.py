"""The job timeline as a chart: one bar per job, from queued to finished, drawn as server-side SVG.

Each job is a row: a thin line while it waits in the queue, a bar while it runs (and between its
retries), coloured by status, with its retries and deferrals written beside it. A job enqueued by another
job of the same subject while that one ran (a hand-off of the chain, sent on its commit) is linked to it
by an arrow. No JavaScript: the page's live refresh re-renders it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from jobkit.models import JobRun

ROW = 26  # px per job
LABEL = 230  # px for the job names on the left
WIDTH = 720  # px of time axis
PAD = 8


@dataclass(frozen=True)
class Bar:
    y: int
    name: str
    status: str
    wait_x: float  # queued
    run_x: float  # started (or queued, if it never started)
    end_x: float  # finished, or now while it is live
    note: str

    @property
    def run_width(self) -> float:
        return self.end_x - self.run_x


@dataclass(frozen=True)
class Link:
    x1: float
    y1: int
    x2: float
    y2: int


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    axis_width: int
    label_width: int
    bars: list[Bar]
    links: list[Link]
    span_label: str


def chart(jobs: Sequence[JobRun], now: datetime | None = None) -> Chart | None:
    if not jobs:
        return None
    now = now or timezone.now()
    start = min(job.queued_at for job in jobs)
    end = max((job.finished_at or now) for job in jobs)
    span = max((end - start).total_seconds(), 0.001)

    def x(moment: datetime) -> float:
        return LABEL + WIDTH * (moment - start).total_seconds() / span

    bars, rows = [], {}
    for row, job in enumerate(jobs):
        y = PAD + row * ROW
        rows[job.pk] = y
        begun = job.started_at or job.queued_at
        notes = [f"{job.retries} retr{'y' if job.retries == 1 else 'ies'}"] if job.retries else []
        if job.attempts > job.retries + 1:  # attempts that spent no retry: deferrals, redeliveries
            notes.append(f"{job.attempts - job.retries - 1} deferred or redelivered")
        run_x = x(begun)
        end_x = max(x(job.finished_at or now), run_x + 2)  # a job done in a blink still shows
        bars.append(Bar(y, job.name, job.status, x(job.queued_at), run_x, end_x, ", ".join(notes)))
    links = [
        Link(x(job.queued_at), rows[parent.pk] + 8, x(job.queued_at), rows[job.pk] + 8)
        for job in jobs
        if (parent := _handed_over_by(job, jobs)) is not None
    ]
    return Chart(LABEL + WIDTH + PAD, PAD * 2 + ROW * len(jobs), WIDTH, LABEL, bars, links, f"{span:.1f} s")


def _handed_over_by(job: JobRun, jobs: Sequence[JobRun]) -> JobRun | None:
    """The job of the same subject that was running when this one was queued: it enqueued this one."""
    for other in jobs:
        if other is job or other.started_at is None:
            continue
        finished = other.finished_at or other.updated_at
        if other.started_at <= job.queued_at <= finished:
            return other
    return None
