"""Prepared queries: built once, each call binds its own arguments, the same rows as the ORM would touch,
on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime
import uuid

from django.db import connection
from django.db.models import CharField, Exists, F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobkit.models import JobRun
from jobkit.prepared import Arg, PreparedInsert, PreparedSelect, PreparedUpdate
from orders.checkout import CartLine, write_order
from orders.models import Order
from shop.factories import ProductFactory

field = JobRun._meta.get_field


def runs(*task_ids: str) -> list[JobRun]:
    return JobRun.objects.bulk_create(JobRun(task_id=id_, name="job", queue="default") for id_ in task_ids)


def test_each_call_binds_its_own_arguments_and_the_query_is_built_once(db):
    runs("a", "b", "c")
    builds = []

    def queryset():
        builds.append(1)
        return JobRun.objects.filter(task_id=Arg("task_id", field("task_id")), status=JobRun.Status.QUEUED)

    start = PreparedUpdate(
        queryset,
        status=JobRun.Status.STARTED,
        attempts=F("attempts") + 1,
        started_at=Arg("now", field("started_at")),
        last_error=Arg("error", field("last_error")),
    )
    first, second = timezone.now(), timezone.now() + datetime.timedelta(seconds=5)

    with CaptureQueriesContext(connection) as statements:
        assert start(task_id="a", now=first, error="it's 'quoted'") == 1
        assert start(task_id="b", now=second, error="") == 1
        assert start(task_id="a", now=second, error="again") == 0  # no longer queued: the filter holds

    assert len(builds) == 1
    assert len(statements.captured_queries) == 3  # one statement per call, nothing read first
    stored = {run.task_id: run for run in JobRun.objects.all()}
    assert (stored["a"].status, stored["a"].attempts, stored["a"].started_at) == ("started", 1, first)
    assert stored["a"].last_error == "it's 'quoted'"
    assert (stored["b"].status, stored["b"].attempts, stored["b"].started_at) == ("started", 1, second)
    assert (stored["c"].status, stored["c"].attempts, stored["c"].started_at) == ("queued", 0, None)


def test_an_argument_is_adapted_by_its_field_and_one_name_binds_every_place_it_appears(db):
    product = ProductFactory()
    first, second = (
        write_order(email=f"{n}@example.com", lines=[CartLine(product, 1)], payment_method="pm_card_visa")
        for n in range(2)
    )
    runs(str(first.public_id))  # a text column holding the first order's id
    public_id = Order._meta.get_field("public_id")
    # "order_id" twice: a UUID column (SQLite stores hex, PostgreSQL a uuid) and a text column
    order_with_a_run = PreparedSelect(
        lambda: Order.objects.filter(
            Exists(JobRun.objects.filter(task_id=Arg("order_id", CharField()))),
            public_id=Arg("order_id", public_id),
        ).values_list("email", "public_id")
    )

    [(email, stored_id)] = order_with_a_run(order_id=str(first.public_id))
    assert (email, public_id.to_python(stored_id)) == (first.email, first.public_id)
    assert list(order_with_a_run(order_id=str(second.public_id))) == []  # no run holds its id
    assert list(order_with_a_run(order_id=str(uuid.uuid4()))) == []


def test_an_insert_writes_its_arguments_and_the_instances_defaults_for_the_rest(db):
    builds = []

    def row():
        builds.append(1)
        now = Arg("now", field("queued_at"))
        return JobRun(task_id=Arg("task_id", field("task_id")), args=Arg("args", field("args")), name="job",
                      queue="default", queued_at=now, updated_at=now)  # fmt: skip

    insert = PreparedInsert(row)
    first, second = timezone.now(), timezone.now() + datetime.timedelta(seconds=5)

    with CaptureQueriesContext(connection) as statements:
        insert(task_id="a", args=["it's 'quoted'", {"n": 1}], now=first)
        insert(task_id="b", args=[], now=second)

    assert len(builds) == 1
    assert len(statements.captured_queries) == 2  # one statement per call, nothing read back
    stored = {run.task_id: run for run in JobRun.objects.all()}
    assert (stored["a"].args, stored["a"].queued_at, stored["a"].updated_at) == (
        ["it's 'quoted'", {"n": 1}],
        first,
        first,
    )
    assert (stored["b"].args, stored["b"].queued_at, stored["b"].updated_at) == ([], second, second)
    # the fields given no Arg: the instance's values, its defaults where it gave none
    assert {(r.name, r.queue, r.status, r.attempts, r.last_error, r.started_at) for r in stored.values()} == {
        ("job", "default", "queued", 0, "", None)
    }
