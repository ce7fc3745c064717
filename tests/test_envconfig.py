"""The environment readers: typed values, defaults for unset or blank variables, errors that name the
variable and what it expects, and a record of every name read."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from envconfig import (
    NAMES_READ,
    EnvError,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_int_list,
    env_list,
    env_path,
    env_str,
)

VAR = "ENVCONFIG_TEST_VALUE"


@pytest.mark.parametrize(
    ("reader", "value", "expected"),
    [
        (lambda: env_str(VAR, "d"), "text", "text"),
        (lambda: env_bool(VAR), "Yes", True),
        (lambda: env_bool(VAR, True), "off", False),
        (lambda: env_int(VAR, 1), " 42 ", 42),
        (lambda: env_float(VAR, 1.0), "0.5", 0.5),
        (lambda: env_path(VAR, Path("/default")), "/srv/media", Path("/srv/media")),
        (lambda: env_list(VAR, []), "a, b,,c", ["a", "b", "c"]),
        (lambda: env_int_list(VAR, []), "1, 2,3", [1, 2, 3]),
        (lambda: env_choice(VAR, "a", ("a", "b")), "b", "b"),
    ],
)
def test_each_reader_returns_the_typed_value(monkeypatch, reader, value, expected):
    monkeypatch.setenv(VAR, value)
    assert reader() == expected


@pytest.mark.parametrize("value", [None, "", "  "])
def test_an_unset_or_blank_variable_gives_the_default(monkeypatch, value):
    monkeypatch.delenv(VAR, raising=False)
    if value is not None:
        monkeypatch.setenv(VAR, value)
    assert env_str(VAR, "default") == "default"
    assert env_bool(VAR, True) is True
    assert env_int(VAR, 7) == 7
    assert env_int_list(VAR, [1, 2]) == [1, 2]
    assert env_choice(VAR, "a", ("a", "b")) == "a"


@pytest.mark.parametrize(
    ("reader", "value", "expected"),
    [
        (lambda: env_bool(VAR), "maybe", "must be one of 1/true/yes/on or 0/false/no/off, got 'maybe'"),
        (lambda: env_int(VAR, 1), "1.5", "must be an integer, got '1.5'"),
        (lambda: env_int(VAR, 1, minimum=1), "0", "must be at least 1, got 0"),
        (lambda: env_float(VAR, 1.0), "fast", "must be a number, got 'fast'"),
        (lambda: env_path(VAR, Path("/default")), "var/media", "must be an absolute path, got 'var/media'"),
        (lambda: env_int_list(VAR, []), "1,two", "must be comma-separated integers, got '1,two'"),
        (lambda: env_choice(VAR, "a", ("a", "b")), "c", "must be one of a, b; got 'c'"),
    ],
)
def test_a_malformed_value_names_the_variable_and_what_it_expects(monkeypatch, reader, value, expected):
    monkeypatch.setenv(VAR, value)
    with pytest.raises(EnvError) as error:
        reader()
    assert str(error.value) == f"{VAR} {expected}"


def test_every_read_is_recorded_by_name_set_or_not(monkeypatch):
    monkeypatch.delenv("ENVCONFIG_TEST_UNSET", raising=False)
    NAMES_READ.discard("ENVCONFIG_TEST_UNSET")
    env_int("ENVCONFIG_TEST_UNSET", 1)
    assert "ENVCONFIG_TEST_UNSET" in NAMES_READ


def test_the_readers_and_the_runtime_file_load_without_django():
    # Settings import both while they load; jobkit, the sandbox and benchmarks use them before Django.
    probe = "import sys, envconfig, devstack.runtime; print(sorted(m for m in sys.modules if 'django' in m))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
