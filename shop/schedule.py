"""Celery beat entries: periodic jobs the shop runs.

Every entry must be safe to run twice (two beat processes, a manual re-run): the job it triggers
guards itself in the database, never by trusting that beat fires exactly once.
"""

from __future__ import annotations

from typing import Any

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {}
