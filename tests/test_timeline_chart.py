"""The job timeline chart (jobkit/timeline_chart.py): bars in time order, hand-offs found, notes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jobkit.models import JobRun
from jobkit.timeline_chart import LABEL, WIDTH, chart

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def run(pk: int, name: str, queued: float, started: float | None, finished: float | None, **extra) -> JobRun:
    at = lambda s: None if s is None else T0 + timedelta(seconds=s)  # noqa: E731
    job = JobRun(
        pk=pk, name=name, queued_at=at(queued), started_at=at(started), finished_at=at(finished), **extra
    )
    job.updated_at = at(finished if finished is not None else started or queued)
    return job


def test_bars_span_queued_to_finished_and_hand_offs_link_the_chain():
    jobs = [
        run(1, "reserve", 0, 1, 2, status="succeeded", attempts=1, retries=0),
        run(2, "charge", 1.5, 3, 6, status="succeeded", attempts=3, retries=1),  # queued while 1 ran
        run(3, "email", 7, 8, 10, status="dead", attempts=1, retries=0),  # queued after 2 ended: no link
    ]
    drawn = chart(jobs, now=T0 + timedelta(seconds=10))
    first, second, third = drawn.bars
    assert (first.wait_x, first.run_x, first.end_x) == (LABEL, LABEL + WIDTH * 0.1, LABEL + WIDTH * 0.2)
    assert third.end_x == LABEL + WIDTH and third.status == "dead"
    assert second.note == "1 retry, 1 deferred or redelivered"
    assert [(link.y1, link.y2) for link in drawn.links] == [(first.y + 8, second.y + 8)]


def test_a_job_still_running_ends_at_now_and_no_jobs_draw_nothing():
    live = run(1, "render", 0, 1, None, status="started", attempts=1, retries=0)
    assert chart([live], now=T0 + timedelta(seconds=4)).bars[0].end_x == LABEL + WIDTH
    assert chart([]) is None
