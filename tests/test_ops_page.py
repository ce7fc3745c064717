"""The staff ops page's sandbox fault switches, against the running sandbox and broker of the session."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from devstack import processes
from sandbox.testing import SandboxControl

pytestmark = pytest.mark.django_db


@pytest.fixture
def sandbox_url(sandbox_process: processes.Child, log_dir: Path) -> str:
    ports = json.loads((log_dir / "sandbox.ready.json").read_text())
    return f"http://{processes.HOST}:{ports['http_port']}"


@pytest.fixture
def staff_without_permissions(client, settings, broker_url: str):
    """A logged-in staff client; the page reads queue lengths and breakers from the session's broker."""
    settings.REDIS_URL = settings.CELERY_BROKER_URL = broker_url
    user = get_user_model().objects.create_user("ops", "ops@example.com", "pw-for-test-only", is_staff=True)
    client.force_login(user)
    return client


@pytest.fixture
def staff(staff_without_permissions):
    """A logged-in staff client allowed the page's actions: switching faults, starting a billing run."""
    user = get_user_model().objects.get(username="ops")
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="shop", codename="switch_sandbox_faults"),
        Permission.objects.get(content_type__app_label="subscriptions", codename="add_billingrun"),
    )
    return staff_without_permissions


@pytest.fixture
def sandbox(sandbox_url: str):
    control = SandboxControl(sandbox_url)
    control.clear_faults()
    yield control
    control.clear_faults()


def test_no_fault_switches_without_a_sandbox(staff, settings):
    settings.SANDBOX_URL = ""
    page = staff.get("/ops/")
    assert page.status_code == 200
    assert b"Circuit breakers" in page.content
    assert b"Sandbox faults" not in page.content and b"Start outage" not in page.content

    response = staff.post("/ops/", {"service": "payments", "outage": "on"}, follow=True)
    assert b"No sandbox is configured" in response.content


def test_an_unreachable_sandbox_is_named_on_the_page(staff, settings):
    closed = f"http://{processes.HOST}:{processes.free_port()}"  # nothing listens there
    settings.SANDBOX_URL = closed
    page = staff.get("/ops/")
    assert page.status_code == 200
    assert f"The sandbox at {closed} cannot be reached".encode() in page.content
    assert b"Start outage" not in page.content

    response = staff.post("/ops/", {"service": "payments", "outage": "on"}, follow=True)
    assert b"The sandbox did not take it" in response.content


def test_the_outage_switch_changes_the_sandbox(staff, settings, sandbox, sandbox_url):
    settings.SANDBOX_URL = sandbox_url
    page = staff.get("/ops/").content.decode()
    assert page.count("Start outage") == 3 and "End outage" not in page  # payments, carrier, mail
    assert "Bill subscriptions due on this date" in page

    staff.post("/ops/", {"service": "carrier", "outage": "on"})
    assert [service for service, fault in sandbox.faults().items() if fault["outage"]] == ["carrier"]
    page = staff.get("/ops/").content.decode()
    assert page.count("Start outage") == 2 and page.count("End outage") == 1

    staff.post("/ops/", {"service": "carrier", "outage": "off"})
    assert not any(fault["outage"] for fault in sandbox.faults().values())


def test_staff_without_the_permissions_are_offered_neither_switches_nor_billing(
    staff_without_permissions, settings, sandbox, sandbox_url
):
    settings.SANDBOX_URL = sandbox_url
    page = staff_without_permissions.get("/ops/").content.decode()
    assert "Sandbox faults" in page  # the faults are shown, not the buttons that switch them
    assert "Start outage" not in page and "Bill subscriptions due on this date" not in page


def test_the_shop_does_not_import_the_test_helpers():
    probe = "import django, sys; django.setup(); import shop.urls; print('sandbox.testing' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], env=processes.base_env(), capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "False", result.stderr
