"""The fault campaign (`make chaos`, chaos/) at a reduced size with a fixed seed: workers killed at random
and at crash points, the broker flushed and restarted, the gateway, carrier and mail failing, webhooks
duplicated and shuffled; then the shop settles by itself and every business invariant holds, checked
against the sandbox's records and the database (docs/failure-handling.md).

It is launched as the chaos panel on /ops/ launches it (shop/chaos_panel.py): its "small" size, detached,
followed through the progress file it keeps, which must record every phase, the faults as they were
injected, the load and the invariant table.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from shop import chaos_panel

pytestmark = pytest.mark.e2e

SEED = 7  # fixes the schedule of faults and requests
# The run takes two to three minutes here (a 95 s fault window, start-up and settling); this only stops
# a campaign that hangs.
TIMEOUT_SECONDS = 900
PHASES = ["starting", "faults", "settling", "checking", "done"]


def test_the_reduced_campaign_settles_with_every_invariant_held(tmp_path: Path, monkeypatch):
    # The campaign starts a broker of its own (redis-server when there is one, or SHOP_REDIS's choice), so
    # it can kill and restart it; with DATABASE_URL it makes a database of its own on that server.
    monkeypatch.setattr(chaos_panel, "FOLDER", tmp_path)
    pid = chaos_panel.start(SEED, "small")
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while chaos_panel.running() and time.monotonic() < deadline:
        time.sleep(2)
    log = (tmp_path / chaos_panel.LOG_FILE).read_text()
    report = log[-8000:]
    if chaos_panel.running():
        os.killpg(pid, signal.SIGTERM)  # its own session: its stack's processes die with it
        pytest.fail(f"still running after {TIMEOUT_SECONDS} s\n{report}")

    progress = json.loads((tmp_path / chaos_panel.PROGRESS_FILE).read_text())
    assert progress["ok"], report
    assert [step["phase"] for step in progress["phases"]] == PHASES
    assert progress["seed"] == SEED and progress["sizes"] == chaos_panel.PRESETS["small"]
    # Every fault as the runner printed it when injecting it (the first, the webhooks', is on all along).
    printed = re.findall(r"^ *\d+\.\ds  (?! )(?:end: )?(.+)$", log, re.MULTILINE)
    recorded = [fault["what"] for fault in progress["faults"][1:]]
    assert recorded == [what for what in printed if not what.startswith("faults stopped")], report
    assert progress["load"]["answered"] == progress["load"]["planned"] > 0
    assert progress["invariants"] and all(row["held"] for row in progress["invariants"]), report
    assert re.search(r"settled in \d+ s, 0 violations$", progress["figures"]), report
