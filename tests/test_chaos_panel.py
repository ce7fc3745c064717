"""The chaos panel on /ops/ (shop/chaos_panel.py): who may start a campaign, one at a time, how it is
launched, and what the panel and its JSON endpoint show of the progress file the campaign keeps.

A recording stand-in replaces the launch here; tests/e2e/test_chaos.py launches a real campaign the same
way and follows its progress file to the end.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from shop import chaos_panel

pytestmark = pytest.mark.django_db


def row(invariant: str, checked: int, violations: list[str], note: str = "") -> dict:
    return {"invariant": invariant, "checked": checked, "held": not violations, "violations": violations,
            "note": note}  # fmt: skip


FINISHED = {
    "seed": 7,
    "sizes": {"orders": 40, "signups": 10, "subscriptions": 200, "kills": 3},
    "replay": "python -m chaos --seed 7 --orders 40 --signups 10 --subscriptions 200 --kills 3",
    "pid": 1,
    "started_at": "2026-11-28T10:00:00+00:00",
    "phase": "done",
    "phases": [{"phase": name, "at": at} for name, at in [("starting", 0), ("faults", 20), ("done", 140)]],
    "window": 95.0,
    "faults": [
        {"at": 3.1, "what": "broker FLUSHALL", "end": False},
        {"at": 40.0, "what": "payments outage (503 to every call)", "end": False},
        {"at": 70.0, "what": "payments outage (503 to every call)", "end": True},
    ],
    "load": {"planned": 56, "answered": 56, "failed": 0},
    "invariants": [
        row("no declined payment recorded as paid", 18, [], "18 declined at the gateway"),
        row("one shipment per completed order, none for others", 33, ["order ord_abc: 2 shipments"]),
    ],
    "notes": ["crash points fired: after_gateway_charge in core-1"],
    "figures": "figures: seed 7: 56 requests (0 failed), 15 faults injected, settled in 2 s, 1 violations",
    "ok": False,
}


class Launches:
    """Stands in for subprocess.Popen: records each launch and, as the real campaign does, keeps the
    lock's descriptor open (a duplicate) until `exit()`."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.held: list[int] = []

    def __call__(self, argv: list[str], **options) -> SimpleNamespace:
        self.calls.append({"argv": argv, **options})
        self.held += [os.dup(fd) for fd in options["pass_fds"]]
        return SimpleNamespace(pid=4242, wait=lambda: 0)

    def exit(self) -> None:
        for fd in self.held:
            os.close(fd)
        self.held.clear()


@pytest.fixture
def panel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(chaos_panel, "FOLDER", tmp_path / "panel")
    return tmp_path / "panel"


@pytest.fixture
def launches(panel: Path, monkeypatch: pytest.MonkeyPatch):
    fake = Launches()
    monkeypatch.setattr(chaos_panel.subprocess, "Popen", fake)
    yield fake
    fake.exit()


@pytest.fixture
def ops(client: Client, settings, broker_url: str) -> Client:
    """Staff allowed to start campaigns; /ops/ reads queues and breakers from the session's broker."""
    settings.REDIS_URL = settings.CELERY_BROKER_URL = broker_url
    user = get_user_model().objects.create_user("ops", "ops@example.com", "pw-for-test-only", is_staff=True)
    user.user_permissions.add(Permission.objects.get(content_type__app_label="shop", codename="run_chaos"))
    client.force_login(user)
    return client


def messages_of(response) -> list[str]:
    return [str(message) for message in response.wsgi_request._messages]


def test_a_start_launches_python_m_chaos_detached_with_a_broker_and_database_of_its_own(
    ops, launches, panel, monkeypatch
):
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")  # the demo's broker
    monkeypatch.setenv("DATABASE_URL", "sqlite:///var/shop.sqlite3")  # the demo's database
    response = ops.post("/ops/chaos/", {"seed": "7", "preset": "small"})
    assert (response.status_code, response["Location"]) == (302, "/ops/")
    assert messages_of(response) == ["Started a small chaos campaign; its progress is below."]
    [call] = launches.calls
    assert call["argv"][1:] == [
        "-m", "chaos", "--seed=7", "--orders=40", "--signups=10", "--subscriptions=200", "--kills=3",
        f"--progress-file={panel / 'progress.json'}",
    ]  # fmt: skip
    assert call["start_new_session"] is True
    assert "REDIS_URL" not in call["env"] and "DATABASE_URL" not in call["env"]
    assert chaos_panel.running()


def test_a_blank_seed_lets_the_campaign_draw_one(ops, launches):
    ops.post("/ops/chaos/", {"seed": "", "preset": "small"})
    [call] = launches.calls
    assert not any(arg.startswith("--seed") for arg in call["argv"])


def test_a_postgresql_server_is_passed_on_for_a_database_of_the_campaigns_own(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/jobshop")
    assert chaos_panel.campaign_env()["DATABASE_URL"] == "postgres://postgres@127.0.0.1:5432/jobshop"


def test_a_second_start_is_refused_while_one_runs_and_allowed_once_it_ended(ops, launches):
    ops.post("/ops/chaos/", {"seed": "7", "preset": "small"})
    refused = ops.post("/ops/chaos/", {"seed": "8", "preset": "small"})
    assert messages_of(refused)[-1] == "A chaos campaign is running already: wait for it to end."
    assert len(launches.calls) == 1
    assert b"Start campaign" not in ops.get("/ops/").content  # not offered while one runs

    launches.exit()  # the campaign's process ended: its descriptor closed, the lock with it
    assert not chaos_panel.running()
    ops.post("/ops/chaos/", {"seed": "8", "preset": "small"})
    assert len(launches.calls) == 2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"seed": "seven", "preset": "small"}, "The seed must be a whole number, or blank for a random one"),
        ({"seed": "7", "preset": "huge"}, "Unknown size 'huge'; expected one of small, full."),
    ],
)
def test_a_bad_seed_or_size_is_refused_and_starts_nothing(ops, launches, data, message):
    response = ops.post("/ops/chaos/", data)
    assert messages_of(response)[0].startswith(message)
    assert launches.calls == []


def test_the_progress_endpoint_serves_the_progress_file(ops, panel):
    assert ops.get("/ops/chaos/").json() == {
        "running": False, "progress": None, "log": str(panel / "campaign.log")
    }  # fmt: skip
    panel.mkdir()
    (panel / "progress.json").write_text(json.dumps(FINISHED))
    assert ops.get("/ops/chaos/").json()["progress"] == FINISHED


def test_the_panel_shows_the_faults_the_invariants_and_the_figures(ops, panel):
    panel.mkdir()
    (panel / "progress.json").write_text(json.dumps(FINISHED))
    page = ops.get("/ops/").content.decode()
    assert "Chaos campaign" in page and "Start campaign" in page
    assert "payments outage (503 to every call)" in page and "end: payments outage" in page
    assert "56 of 56 requests answered" in page
    assert "no declined payment recorded as paid" in page and "18 declined at the gateway" in page
    assert "1: order ord_abc: 2 shipments" in page  # the violation, with its id
    assert FINISHED["figures"] in page and FINISHED["replay"] in page


def test_a_campaign_that_died_without_finishing_says_so(ops, panel):
    panel.mkdir()
    (panel / "progress.json").write_text(json.dumps({**FINISHED, "phase": "faults", "invariants": []}))
    assert "The campaign ended without finishing" in ops.get("/ops/").content.decode()


def test_staff_without_the_permission_see_the_panel_but_no_start(ops, panel):
    get_user_model().objects.get(username="ops").user_permissions.clear()
    page = ops.get("/ops/").content.decode()
    assert "Chaos campaign" in page and "Start campaign" not in page
