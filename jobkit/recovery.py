"""Recovery: the database is the source of truth, the broker only transport.

Messages get lost: Redis restarted or flushed, a worker killed after taking a message and before the
broker recorded it, a broker unreachable at the moment a transaction committed. One sweep, run by beat
once per time slot (SWEEP_INTERVAL_SECONDS) however many beats fire it, finds the work those messages
were for and sends it again. It knows no domain: each app registers a *finder* (in its
`AppConfig.ready()`) that says which of its subjects sit in an intermediate state unchanged since a
cutoff, and which job moves each one on.

For each subject a finder reports, the sweep re-enqueues its jobs only if
- no job of the subject is alive: a job counts as alive while its message is held by the broker (waiting
  in a queue, or taken by a worker and not acknowledged, which a Redis broker gives back after the
  visibility timeout), or while its timeline row showed a sign of life after the cutoff;
- and the subject is not waiting for a human: when its latest event is a job that died (a dead letter),
  staff decide (the admin's re-enqueue), or the sweep would repeat the failure once per minute forever.
Re-enqueueing work that was merely slow costs a no-op job, never a double effect: every job is idempotent.

Before that, the sweep publishes the messages of `unsent` timeline rows (staged for a relay that is not
running, or refused by a broker that was down; `jobkit.enqueue`, `jobkit.relay`) with their original
task ids. After it, it sends again, with their original task ids, the jobs whose messages were lost
while no finder reports their subject: a subject that moved on without them (a webhook recorded the
payment a lost charge job was making), whose timeline would otherwise show the lost job queued or
running forever. The rule is the finders' rule for
a lost message: no sign of life since the cutoff, not held by the broker, subject not waiting for a human.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from typing import Any, TypeVar

from celery import Task, current_app
from django.db import transaction
from django.db.models import Max, Model, Q, QuerySet
from django.utils import timezone

from jobkit import broker, clock, relay
from jobkit.enqueue import enqueue_on_commit, publish
from jobkit.models import JobRun
from jobkit.registry import Registry
from jobkit.unique import claim_once

logger = logging.getLogger(__name__)

# At most this many subjects re-enqueued (and unsent messages published) per sweep: after losing a
# large backlog, recovery goes on a minute slot at a time instead of one huge transaction.
SWEEP_LIMIT = 1000
_CHUNK = 200  # subjects whose timelines are read in one query
_UNFINISHED = (*JobRun.LIVE_STATUSES, JobRun.Status.UNSENT)
M = TypeVar("M", bound=Model)


@dataclass(frozen=True)
class Stuck:
    """A subject in an intermediate state, and the job(s) that move it on: (task, args) pairs."""

    subject: str
    jobs: Sequence[tuple[Task, tuple[Any, ...]]]


Finder = Callable[[datetime], Generator[Stuck, None, None]]
# What each app's stuck subjects are: the generator `finder(cutoff)` yields those unchanged since cutoff.
finders: Registry[Finder] = Registry("recovery finder")


def in_pages(queryset: QuerySet[M], size: int = _CHUNK) -> Generator[M, None, None]:
    """The rows of `queryset` in primary-key order, read a page at a time, each page whole: how finders
    read, since the sweep writes between the rows they yield.

    Not `.iterator()`: its cursor stays open between rows, and on SQLite an open read holds this
    connection's snapshot from before the sweep's writes; once another process commits, the sweep's next
    transaction on this connection fails at once with "database is locked" (no busy timeout helps).
    """
    ordered = queryset.order_by("pk")
    last_pk = None
    while True:
        page = list((ordered if last_pk is None else ordered.filter(pk__gt=last_pk))[:size])
        yield from page
        if len(page) < size:
            return
        last_pk = page[-1].pk


@dataclass
class SweepReport:
    published: list[str] = field(default_factory=list)  # task ids of unsent messages now sent
    resent: list[str] = field(default_factory=list)  # task ids of lost messages no finder covered
    requeued: dict[str, list[str]] = field(default_factory=dict)  # finder name -> subjects moved on
    waiting_for_human: list[str] = field(default_factory=list)  # subjects whose latest job is dead

    def as_dict(self) -> dict[str, Any]:
        return {
            "published": self.published,
            "requeued": self.requeued,
            "resent": self.resent,
            "waiting_for_human": self.waiting_for_human,
        }


def sweep_once_per_slot(stuck_after: timedelta, slot_seconds: float) -> dict[str, Any] | None:
    """The beat entry's sweep: once per time slot (a unique key), None when the slot was taken."""
    slot = int(timezone.now().timestamp() // slot_seconds)
    with transaction.atomic():  # the claim commits on its own, before any work
        claim = claim_once(f"recovery:{slot_seconds:g}s:{slot}")
    if claim is None:
        return None
    result = sweep(stuck_after).as_dict()
    claim.result = result
    claim.save(update_fields=["result"])
    return result


def sweep(stuck_after: timedelta) -> SweepReport:
    """Publish unsent messages, then re-enqueue the jobs of every stuck subject with no live job."""
    report = SweepReport()
    budget = SWEEP_LIMIT - _publish_unsent(report)
    cutoff = clock.now() - stuck_after  # the shop clock: a subject waits as long as the shop says
    held = _Held()
    for name, finder in finders.items():
        moved = report.requeued.setdefault(name, [])
        # Closed however the loop ends (the budget spent, or an error whose traceback would keep it
        # alive): a finder left suspended keeps whatever it holds, such as a cursor not read to the end.
        with closing(finder(cutoff)) as candidates:
            while budget > 0 and (chunk := list(islice(candidates, min(_CHUNK, budget)))):
                timelines = _timelines([stuck.subject for stuck in chunk])
                for stuck in chunk:
                    timeline = timelines.get(stuck.subject, [])
                    if _waiting_for_human(timeline):
                        report.waiting_for_human.append(stuck.subject)
                        continue
                    unfinished = [run for run in timeline if run.status in _UNFINISHED]
                    if any(
                        run.updated_at >= cutoff or run.status == JobRun.Status.UNSENT for run in unfinished
                    ):
                        continue
                    if any(held.holds(run.task_id) for run in unfinished):
                        continue
                    _requeue(stuck, unfinished)
                    moved.append(stuck.subject)
                    budget -= 1
    _resend_lost(report, cutoff, held, budget)
    if any(report.requeued.values()) or report.published or report.resent:
        logger.warning("recovery sweep: %s", report.as_dict())
    return report


class _Held:
    """The task ids the broker holds, read once per sweep and only if some job needs them."""

    def __init__(self) -> None:
        self._ids: set[str] | None = None

    def holds(self, task_id: str) -> bool:
        if self._ids is None:
            self._ids = broker.held_task_ids(current_app.amqp.queues.keys())
        return task_id in self._ids


def _resend_lost(report: SweepReport, cutoff: datetime, held: _Held, budget: int) -> None:
    """Send again the jobs whose messages were lost and whose subjects no finder moved on."""
    stale = JobRun.objects.filter(status__in=JobRun.LIVE_STATUSES, updated_at__lt=cutoff)
    lost = list(stale.order_by("id")[: max(budget, 0)])
    waiting = _waiting_for_human_among({run.subject for run in lost})
    for run in lost:
        if run.subject in waiting or held.holds(run.task_id):
            continue
        # Claim the row as it was read, so a sweep racing this one, or the job coming back to life
        # meanwhile, keeps it from being sent twice.
        claimed = JobRun.objects.filter(pk=run.pk, status=run.status, updated_at=run.updated_at).update(
            status=JobRun.Status.QUEUED,
            updated_at=timezone.now(),
            last_error="message lost; sent again by the recovery sweep",
        )
        if claimed and publish(current_app.tasks[run.name], run.args, run.task_id):
            report.resent.append(run.task_id)


def _publish_unsent(report: SweepReport) -> int:
    """Drain staged and refused messages as the relay does (the same claim, so the two never both send
    one), a batch at a time, until none is left, the broker refuses one, or the sweep's limit is met."""
    while (room := SWEEP_LIMIT - len(report.published)) > 0:
        batch = min(relay.BATCH_SIZE, room)
        sent, broker_took_all = relay.drain(batch)
        report.published += sent
        if not broker_took_all or len(sent) < batch:
            break
    return len(report.published)


def _timelines(subjects: list[str]) -> dict[str, list[JobRun]]:
    found: dict[str, list[JobRun]] = {}
    runs = JobRun.objects.filter(subject__in=subjects).only(
        "task_id", "subject", "status", "queued_at", "updated_at", "finished_at"
    )
    for run in runs:
        found.setdefault(run.subject, []).append(run)
    return found


def _waiting_for_human_among(subjects: set[str]) -> set[str]:
    """_waiting_for_human for many subjects in one query, however long their timelines."""
    latest = (
        JobRun.objects.filter(subject__in=subjects)
        .values("subject")
        .annotate(queued=Max("queued_at"), died=Max("finished_at", filter=Q(status=JobRun.Status.DEAD)))
    )
    return {row["subject"] for row in latest if row["died"] and row["died"] >= row["queued"]}


def _waiting_for_human(timeline: list[JobRun]) -> bool:
    """The subject's latest event is a job dying: nothing was queued for it since."""
    deaths = [run.finished_at for run in timeline if run.status == JobRun.Status.DEAD and run.finished_at]
    return bool(deaths) and max(deaths) >= max(run.queued_at for run in timeline)


def _requeue(stuck: Stuck, lost: list[JobRun]) -> None:
    with transaction.atomic():
        JobRun.objects.filter(pk__in=[run.pk for run in lost], status__in=JobRun.LIVE_STATUSES).update(
            status=JobRun.Status.REQUEUED, last_error="message lost; re-enqueued by the recovery sweep"
        )
        for task, args in stuck.jobs:
            if task.subject_for(args) != stuck.subject:
                raise ValueError(f"{task.name}{args} does not work on {stuck.subject}")
            enqueue_on_commit(task, *args)
