"""The relay's drain (jobkit/relay.py): each staged row's message sent once, in order, also with two
relays (or a relay and the recovery sweep) at once; a refusing broker leaves the rows staged.

The messages go to a Redis of this module's own, which no worker reads, and are counted there.
"""

from __future__ import annotations

import json
import threading
from collections import Counter

import pytest
import redis
from django.db import connection

from jobkit import relay
from jobkit.models import JobRun
from tests.harness import broker_unreachable, producer_pointed_at

pytestmark = pytest.mark.django_db(transaction=True)

TASK = "orders.reserve_stock"
QUEUE = "default"


@pytest.fixture
def quiet_broker(redis_url: str) -> redis.Redis:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    with producer_pointed_at(redis_url):
        yield client


def stage(count: int) -> list[str]:
    JobRun.objects.bulk_create(
        JobRun(task_id=f"staged-{n:04}", name=TASK, queue=QUEUE, subject=f"order:{n}", args=[str(n)],
               status=JobRun.Status.UNSENT)
        for n in range(count)
    )  # fmt: skip
    return [f"staged-{n:04}" for n in range(count)]


def sent_task_ids(client: redis.Redis) -> list[str]:
    """The task ids waiting in the queue, in the order they were sent."""
    return [json.loads(raw)["headers"]["id"] for raw in reversed(client.lrange(QUEUE, 0, -1))]


def test_a_drain_sends_staged_rows_oldest_first_and_marks_them_queued(quiet_broker) -> None:
    staged = stage(5)

    first, took_all = relay.drain(limit=3)
    rest, _ = relay.drain(limit=3)

    assert took_all and first == staged[:3] and rest == staged[3:]
    assert sent_task_ids(quiet_broker) == staged
    assert set(JobRun.objects.values_list("status", flat=True)) == {JobRun.Status.QUEUED}
    assert relay.drain() == ([], True)  # nothing left: nothing sent again


def test_two_relays_at_once_send_each_message_once(quiet_broker) -> None:
    staged = stage(300)
    sent: list[list[str]] = [[], []]

    def relay_process(index: int) -> None:
        try:
            while True:
                batch, _ = relay.drain(limit=20)
                if not batch:
                    return
                sent[index] += batch
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=relay_process, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert sorted(sent[0] + sent[1]) == staged
    assert Counter(sent_task_ids(quiet_broker)) == Counter(staged)  # every message in the broker once


def test_a_refusing_broker_leaves_the_rows_staged_for_the_next_drain(quiet_broker, redis_url) -> None:
    staged = stage(4)

    with broker_unreachable():
        sent, took_all = relay.drain()

    assert (sent, took_all) == ([], False)
    runs = JobRun.objects.order_by("task_id")
    assert [run.status for run in runs] == [JobRun.Status.UNSENT] * 4
    assert "not sent" in runs[0].last_error  # the refused one says why; the rest were never tried
    assert relay.drain() == (staged, True)
    assert sent_task_ids(quiet_broker) == staged
