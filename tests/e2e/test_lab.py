"""The failure lab (`make lab`, lab/): every naive version fails its fault and the shop's code holds under
the same fault, by the counts measured at the sandbox and in the database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
# The whole lab takes about four minutes here; this only stops one that hangs.
TIMEOUT_SECONDS = 600


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    # The lab starts its own stack, as `make lab` does (with DATABASE_URL, a database of its own on that
    # server). Not on this session's REDIS_URL: the session's own worker consumes from it and would take
    # the lab's jobs; without it the lab starts a broker of its own.
    out = tmp_path_factory.mktemp("lab") / "rows.json"
    env = {name: value for name, value in os.environ.items() if name != "REDIS_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "lab", "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_SECONDS,
    )  # fmt: skip
    assert out.exists(), result.stdout + result.stderr[-5000:]
    return {row["pattern"].split()[0]: row for row in json.loads(out.read_text())}


def test_a_retried_charge_without_a_key_charges_twice_the_shop_once(rows):
    row = rows["2"]
    assert row["naive"]["counts"]["charges"] >= 2
    assert row["shop"]["counts"]["charges"] == 1


def test_without_a_shared_breaker_a_down_gateway_gets_every_retry(rows):
    for pattern in ("6", "C"):
        naive, shop = rows[pattern]["naive"]["counts"], rows[pattern]["shop"]["counts"]
        assert naive["calls"] > shop["calls"], rows[pattern]
        assert not rows[pattern]["shop"]["failed"], rows[pattern]  # within threshold + probes
        assert shop["completed"] == shop["charges"]


def test_a_workflow_retried_whole_charges_again_and_never_refunds(rows):
    naive, shop = rows["7"]["naive"]["counts"], rows["7"]["shop"]["counts"]
    assert naive["charges"] > 1 and naive["refunds"] == 0
    assert shop == {"charges": 1, "refunds": 1}


def test_a_reminder_scheduled_at_decline_time_reaches_a_customer_who_paid(rows):
    assert rows["5"]["naive"]["counts"]["reminders"] >= 1
    assert rows["5"]["shop"]["counts"]["reminders"] == 0


def test_a_countdown_past_the_visibility_timeout_runs_the_job_again_and_again(rows):
    assert rows["A"]["naive"]["counts"]["reminders"] > 1
    assert not rows["A"]["shop"]["failed"], rows["A"]  # each of the three reminders once


def test_one_job_doing_everything_charges_per_retry_and_ships_nothing_while_mail_is_down(rows):
    naive, shop = rows["1"]["naive"]["counts"], rows["1"]["shop"]["counts"]
    assert naive["charges"] > 1 and naive["shipments_in_outage"] == 0, rows["1"]
    assert shop["pdf_in_outage"] == 1 and shop["shipments_in_outage"] == 1, rows["1"]
    assert (shop["charges"], shop["shipments"], shop["emails"]) == (1, 1, 2), rows["1"]


def test_a_chain_whose_step_process_dies_stays_stuck_the_shops_completes(rows):
    naive, shop = rows["3"]["naive"]["counts"], rows["3"]["shop"]["counts"]
    assert naive["stuck"] == 1 and naive["emails"] == 0, rows["3"]
    assert shop["completed"] == 1 and shop["charges"] == 1, rows["3"]


def test_a_billing_loop_redelivered_after_a_kill_charges_again_the_shops_bills_once(rows):
    naive, shop = rows["4"]["naive"]["counts"], rows["4"]["shop"]["counts"]
    assert naive["charged_twice"] > 0, rows["4"]
    assert shop["charged_twice"] == 0 and shop["charges"] == shop["billed"] == 30, rows["4"]


def test_a_whole_worker_killed_loses_an_early_acked_job_the_shops_comes_back(rows):
    naive, shop = rows["B"]["naive"]["counts"], rows["B"]["shop"]["counts"]
    assert naive["defaults_paid"] == 0, rows["B"]  # lost for good
    assert naive["acks_late_paid"] == 1, rows["B"]  # back, after the visibility timeout
    assert shop["completed"] == 1 and shop["charges"] == 1, rows["B"]


def test_every_row_is_as_expected(rows):
    assert len(rows) == 10, sorted(rows)
    assert all(row["as_expected"] for row in rows.values()), json.dumps(rows, indent=2)
