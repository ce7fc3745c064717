"""The shop's Redis transport (jobkit/broker.py): one redis-py client per channel, messages as before."""

from __future__ import annotations

from kombu import Connection

from jobkit.broker import Transport


def test_a_channel_makes_one_client_for_all_its_operations(redis_url: str) -> None:
    with Connection(redis_url, transport=Transport) as connection:
        queue = connection.SimpleQueue("transport-test")
        for n in range(3):
            queue.put({"n": n})
        received = [queue.get(timeout=5) for _ in range(3)]
        for message in received:
            message.ack()
        channel = queue.channel
        assert [message.payload["n"] for message in received] == [0, 1, 2]
        assert channel._create_client() is channel._create_client()
        queue.close()


def test_the_client_follows_a_new_connection_pool(redis_url: str) -> None:
    with Connection(redis_url, transport=Transport) as connection:
        channel = connection.default_channel
        before = channel._create_client()
        channel._disconnect_pools()  # what kombu does after losing the connection

        after = channel._create_client()

        assert after is not before and after.connection_pool is channel.pool
        assert after.ping()


def test_the_shop_publishes_through_it() -> None:
    from shop.celery import app

    with app.connection_for_write() as connection:
        assert isinstance(connection.transport, Transport)
