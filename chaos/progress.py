"""The campaign's progress as a JSON file (`python -m chaos --progress-file PATH`), for the chaos panel of
the staff ops page (shop/chaos_panel.py), which reads it and imports nothing from here: this docstring is
the format both sides keep to.

    {"seed": 7, "sizes": {"orders": 40, "signups": 10, "subscriptions": 200, "kills": 3},
     "replay": "python -m chaos --seed 7 ...", "pid": 1234, "started_at": "<ISO 8601, UTC>",
     "phase": "starting" | "faults" | "settling" | "checking" | "done" | "failed",
     "phases": [{"phase": "faults", "at": 12.5}, ...],   # seconds since the runner started
     "window": 95.0,                                    # the fault window's length, once drawn
     "faults": [{"at": 3.1, "what": "broker FLUSHALL", "end": false}, ...],  # seconds into the window
     "load": {"planned": 56, "answered": 20, "failed": 0},
     "invariants": [{"invariant": "...", "checked": 40, "held": true, "violations": [], "note": "..."}],
     "notes": ["crash points fired: ..."], "figures": "figures: seed 7 ...", "ok": true,
     "error": "..."}                                    # phase "failed": the runner itself stopped

Each event rewrites the whole file through a rename, so a reader never sees half of one.
"""

from __future__ import annotations

import datetime
import json
import os
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the runner makes a Progress before Django is set up, which chaos.invariants needs
    from chaos.invariants import Row


class Progress:
    """Records the campaign's events into `path`; with no path it records nothing."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._began = time.monotonic()
        self._lock = threading.Lock()  # the fault and supervisor threads both report
        self.doc: dict[str, Any] = {
            "pid": os.getpid(),
            "started_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "phase": "",
            "phases": [],
            "faults": [],
            "load": {"planned": 0, "answered": 0, "failed": 0},
            "invariants": [],
        }

    def phase(self, name: str, **facts: Any) -> None:
        with self._lock:
            self.doc.update(facts, phase=name)
            self.doc["phases"].append({"phase": name, "at": round(time.monotonic() - self._began, 1)})
            self._write()

    def fault(self, at: float, what: str, end: bool) -> None:
        with self._lock:
            self.doc["faults"].append({"at": round(at, 1), "what": what, "end": end})
            self._write()

    def load(self, planned: int, answered: int, failed: int) -> None:
        counts = {"planned": planned, "answered": answered, "failed": failed}
        with self._lock:
            if counts != self.doc["load"]:  # called every half second: write changes only
                self.doc["load"] = counts
                self._write()

    def finish(self, rows: list[Row], notes: list[str], figures: str, ok: bool) -> None:
        invariants = [{**asdict(row), "held": row.held} for row in rows]
        self.phase("done", invariants=invariants, notes=notes, figures=figures, ok=ok)

    def fail(self, error: str) -> None:
        self.phase("failed", error=error, ok=False)

    def _write(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_name(f"{self.path.name}.tmp")
        tmp.write_text(json.dumps(self.doc, indent=1))
        tmp.replace(self.path)
