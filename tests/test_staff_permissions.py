"""Staff actions need staff, and each one its own permission; a refused action changes nothing.

The /ops/ actions: starting a billing run needs subscriptions.add_billingrun, switching the sandbox's
faults needs shop.switch_sandbox_faults, starting a chaos campaign needs shop.run_chaos. The admin actions
(re-enqueue dead jobs, retry a billing run's failed batches) need change permission on their model:
viewing it is not enough.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Permission
from django.test import Client

from jobkit.models import JobRun
from orders import jobs
from shop import chaos_panel, sandbox_faults
from subscriptions.models import BillingBatch, BillingRun

pytestmark = pytest.mark.django_db


def make_user(name: str, *permissions: str, staff: bool = True) -> AbstractUser:
    user = get_user_model().objects.create_user(
        name, f"{name}@example.com", "pw-for-test-only", is_staff=staff
    )
    for permission in permissions:
        app_label, codename = permission.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


def client_for(user: AbstractUser | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@dataclass
class Action:
    url: str
    data: dict[str, Any]
    permissions: tuple[str, ...]  # what the action needs, besides staff
    state: Callable[[], Any]  # what it changes
    then: str = ""  # where it sends the browser after, if not back to `url`


# --- /ops/ ----------------------------------------------------------------------------------------------
def start_billing_run(request: pytest.FixtureRequest) -> Action:
    data = {"bill_date": datetime.date(2030, 1, 1).isoformat()}
    return Action("/ops/", data, ("subscriptions.add_billingrun",), lambda: BillingRun.objects.count())


def switch_sandbox_outage(request: pytest.FixtureRequest) -> Action:
    switched: list[tuple[str, bool]] = []  # a recording sandbox: this file is about who may switch
    request.getfixturevalue("monkeypatch").setattr(
        sandbox_faults, "set_outage", lambda service, on: switched.append((service, on))
    )
    request.getfixturevalue("settings").SANDBOX_URL = "http://sandbox.invalid"
    data = {"service": "payments", "outage": "on"}
    return Action("/ops/", data, ("shop.switch_sandbox_faults",), lambda: list(switched))


def start_chaos_campaign(request: pytest.FixtureRequest) -> Action:
    started: list[tuple[int | None, str]] = []  # a recording launcher: this file is about who may start
    request.getfixturevalue("monkeypatch").setattr(
        chaos_panel, "start", lambda seed, preset: started.append((seed, preset))
    )
    data = {"seed": "7", "preset": "small"}
    return Action("/ops/chaos/", data, ("shop.run_chaos",), lambda: list(started), then="/ops/")


# --- admin actions --------------------------------------------------------------------------------------
def requeue_dead_job(request: pytest.FixtureRequest) -> Action:
    dead = JobRun.objects.create(
        task_id="dead-1", name=jobs.reserve_stock.name, queue="default", subject="order:1", args=["1"],
        status=JobRun.Status.DEAD,
    )  # fmt: skip
    data = {"action": "requeue", "_selected_action": [dead.pk], "index": "0"}
    permissions = ("jobkit.view_deadjob", "jobkit.change_deadjob")
    return Action("/admin/jobkit/deadjob/", data, permissions, lambda: JobRun.objects.get(pk=dead.pk).status)


def retry_failed_batches(request: pytest.FixtureRequest) -> Action:
    run = BillingRun.objects.create(
        billing_date=datetime.date(2030, 1, 1), batch_size=10, status=BillingRun.Status.DONE
    )
    batch = BillingBatch.objects.create(run=run, number=1, after_id=0, last_id=10, status="failed")
    data = {"action": "retry_failed_batches", "_selected_action": [run.pk], "index": "0"}
    permissions = ("subscriptions.view_billingrun", "subscriptions.change_billingrun")
    return Action(
        "/admin/subscriptions/billingrun/",
        data,
        permissions,
        lambda: BillingBatch.objects.get(pk=batch.pk).status,
    )


OPS = [start_billing_run, switch_sandbox_outage, start_chaos_campaign]
ADMIN = [requeue_dead_job, retry_failed_batches]
ALL = OPS + ADMIN


@pytest.mark.parametrize("make_action", ALL, ids=[f.__name__ for f in ALL])
def test_anonymous_and_non_staff_users_are_sent_to_the_login_page(make_action, request):
    action = make_action(request)
    before = action.state()
    # A non-staff user is refused even holding every permission the action needs.
    for user in (None, make_user("customer", *action.permissions, staff=False)):
        response = client_for(user).post(action.url, action.data)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")
        assert action.state() == before


@pytest.mark.parametrize("make_action", OPS, ids=[f.__name__ for f in OPS])
def test_an_ops_action_without_its_permission_is_a_403_naming_it(make_action, request):
    action = make_action(request)
    before = action.state()
    other = {"subscriptions.add_billingrun", "shop.switch_sandbox_faults", "shop.run_chaos"}
    other -= set(action.permissions)
    response = client_for(make_user("ops", *other)).post(action.url, action.data)  # the other action's
    assert response.status_code == 403
    assert f"you need the permission {action.permissions[0]}" in response.content.decode()
    assert action.state() == before


@pytest.mark.parametrize("make_action", ADMIN, ids=[f.__name__ for f in ADMIN])
def test_an_admin_action_needs_change_permission_not_just_view(make_action, request):
    action = make_action(request)
    before = action.state()
    view, _change = action.permissions

    assert client_for(make_user("nobody")).post(action.url, action.data).status_code == 403
    assert action.state() == before

    viewer = client_for(make_user("viewer", view))
    assert f'value="{action.data["action"]}"' not in viewer.get(action.url).content.decode()  # not offered
    assert viewer.post(action.url, action.data).status_code == 200  # posted anyway: the list, unchanged
    assert action.state() == before


@pytest.mark.parametrize("make_action", ALL, ids=[f.__name__ for f in ALL])
def test_staff_with_the_permission_can(make_action, request):
    action = make_action(request)
    before = action.state()
    staff = client_for(make_user("ops", *action.permissions))
    if action.url.startswith("/admin/"):
        assert f'value="{action.data["action"]}"' in staff.get(action.url).content.decode()
    response = staff.post(action.url, action.data)
    assert (response.status_code, response["Location"]) == (302, action.then or action.url)
    assert action.state() != before
