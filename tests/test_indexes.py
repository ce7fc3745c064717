"""The tables written for every order and every job carry no index for LIKE: none of their queries uses one.

On PostgreSQL, Django gives a CharField with unique=True or db_index=True a second index, for LIKE
(`varchar_pattern_ops`). The shop matches none of these columns by prefix, and each such index is one
more write for every insert, and for every update that changes an indexed column (a job's or an
order's status). The models declare those keys in Meta.constraints and Meta.indexes instead."""

from __future__ import annotations

import pytest
from django.db import connection

from billing.models import StripeEvent
from jobkit.models import JobExecution, JobRun
from orders.models import Order
from shipping.models import Shipment

WRITTEN_FOR_EVERY_ORDER_OR_JOB = [JobRun, JobExecution, Order, StripeEvent, Shipment]


def test_no_index_for_like_on_the_tables_every_order_and_job_write(db):
    if connection.vendor != "postgresql":
        pytest.skip("only PostgreSQL adds an index for LIKE beside a CharField's own")
    tables = [model._meta.db_table for model in WRITTEN_FOR_EVERY_ORDER_OR_JOB]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = ANY(%s) AND indexdef LIKE %s",
            [tables, "%pattern_ops%"],
        )
        assert [name for (name,) in cursor.fetchall()] == []
