"""The Redis broker: kombu's Redis transport with one client per channel, and what the broker still holds.

kombu's Redis channel builds a new redis-py client for every operation it makes outside its consumer
(each message published, each acknowledgement), and a redis-py client fills about 170 response callbacks
when it is made: profiled, 2,000 `apply_async` calls made 3.4 million Python calls with kombu's channel
and 2.3 million with this one. The `Transport` here makes one such client per channel and connection pool,
and uses it for every operation (redis-py clients are safe to share; each command takes a connection from
the pool). Settings select it with CELERY_BROKER_TRANSPORT.

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
from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    def _create_client(self, asynchronous: bool = False) -> redis.Redis:
        if asynchronous:  # the consumer's own client, made once per channel by kombu already
            return super()._create_client(asynchronous=True)
        pool = self.pool  # made again after a lost connection: then so is the client
        client = self.__dict__.get("_shared_client")
        if client is None or client.connection_pool is not pool:
            client = self.__dict__["_shared_client"] = super()._create_client()
        return client


class Transport(kombu_redis.Transport):
    Channel = Channel


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
