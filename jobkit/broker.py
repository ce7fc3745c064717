"""What a Redis broker still holds, read the way kombu's Redis transport stores it.

A message waits in a list named after its queue; once a worker takes it, it sits in the `unacked` hash
until acknowledged (with late acks: after the job ends), and comes back to its queue after the
visibility timeout if that worker died. Either way the broker will deliver it: the recovery sweep
counts such a job as alive, however long it has waited.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import redis
from django.conf import settings

_UNACKED = "unacked"  # kombu's default unacked_key
_READ_CHUNK = 1000  # list entries per LRANGE, so a long backlog is read in bounded pieces


def held_task_ids(queues: Iterable[str]) -> set[str]:
    """Task ids of every message waiting in `queues` or taken by a worker and not yet acknowledged."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=5, socket_connect_timeout=5)
    ids: set[str] = set()
    for raw in client.hvals(_UNACKED):
        ids.add(_task_id(json.loads(raw)[0]))
    for queue in queues:
        start = 0
        while chunk := client.lrange(queue, start, start + _READ_CHUNK - 1):
            ids.update(_task_id(json.loads(raw)) for raw in chunk)
            start += _READ_CHUNK
    ids.discard("")
    return ids


def _task_id(message: dict) -> str:
    return (message.get("headers") or {}).get("id") or ""
