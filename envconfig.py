"""Typed, validated readers of environment variables: every variable the project reads goes through one.

Each reader returns the variable's value, or `default` when the variable is unset or blank, and raises
EnvError, naming the variable and what it expects, for a value it cannot use: a typo stops the process
at start-up instead of quietly running with a default. Each reader also records the name it read in
NAMES_READ, so a test can hold what the code reads against what README.md documents.

Imports nothing from Django or the project: settings, jobkit, the sandbox and the dev stack all use
it, some before Django settings exist.
"""

from __future__ import annotations

import os
from pathlib import Path

NAMES_READ: set[str] = set()

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class EnvError(ValueError):
    """An environment variable holds a value its reader cannot use."""


def _read(name: str) -> str | None:
    NAMES_READ.add(name)
    value = os.environ.get(name)
    # Blank counts as unset: `VAR= command` and compose's `VAR: ""` mean "the default", not "".
    return value if value and value.strip() else None


def _at_least(name: str, value: float, minimum: float | None) -> None:
    if minimum is not None and value < minimum:
        raise EnvError(f"{name} must be at least {minimum}, got {value}")


def env_str(name: str, default: str = "") -> str:
    value = _read(name)
    return default if value is None else value


def env_bool(name: str, default: bool = False) -> bool:
    value = _read(name)
    if value is None:
        return default
    word = value.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise EnvError(f"{name} must be one of {'/'.join(_TRUE)} or {'/'.join(_FALSE)}, got {value!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = _read(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise EnvError(f"{name} must be an integer, got {value!r}") from None
    _at_least(name, number, minimum)
    return number


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    value = _read(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise EnvError(f"{name} must be a number, got {value!r}") from None
    _at_least(name, number, minimum)
    return number


def env_path(name: str, default: Path) -> Path:
    value = _read(name)
    if value is None:
        return default
    # Relative to what? The web server, workers, beat and the sandbox may each run from another directory.
    if not os.path.isabs(value):
        raise EnvError(f"{name} must be an absolute path, got {value!r}")
    return Path(value)


def env_list(name: str, default: list[str]) -> list[str]:
    """Comma-separated values, blanks dropped."""
    value = _read(name)
    if value is None:
        return list(default)
    return [part.strip() for part in value.split(",") if part.strip()]


def env_int_list(name: str, default: list[int]) -> list[int]:
    """Comma-separated integers."""
    value = _read(name)
    if value is None:
        return list(default)
    try:
        return [int(part) for part in value.split(",")]
    except ValueError:
        raise EnvError(f"{name} must be comma-separated integers, got {value!r}") from None


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = _read(name)
    if value is None:
        return default
    if value.strip() not in choices:
        raise EnvError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value.strip()
