"""Settings refuse unsafe production configurations before anything starts."""

from __future__ import annotations

import subprocess
import sys

import pytest

from shop.processes import base_env


def load_settings(setting: str = "DEBUG", **env: str | None) -> subprocess.CompletedProcess[str]:
    """Print one setting from a fresh process; an env value of None removes that variable."""
    environ = base_env(**{name: value for name, value in env.items() if value is not None})
    for name in [name for name, value in env.items() if value is None]:
        environ.pop(name, None)
    return subprocess.run(
        [
            sys.executable,
            "-c",
            f"import django; django.setup(); from django.conf import settings; print(settings.{setting})",
        ],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SHOP_ENV": "production", "DJANGO_SECRET_KEY": ""}, "DJANGO_SECRET_KEY"),
        ({"SHOP_ENV": "production", "DJANGO_SECRET_KEY": "short"}, "DJANGO_SECRET_KEY"),
        ({"SHOP_ENV": "production", "DJANGO_SECRET_KEY": "x" * 50, "DJANGO_DEBUG": "1"}, "DJANGO_DEBUG"),
        ({"DB_CONN_MAX_AGE": "forever"}, "DB_CONN_MAX_AGE must be an integer"),
    ],
)
def test_unsafe_or_malformed_settings_refuse_to_start(env, message):
    result = load_settings(**env)
    assert result.returncode != 0
    assert message in result.stderr


def test_production_with_a_real_key_starts_with_debug_off():
    result = load_settings(SHOP_ENV="production", DJANGO_SECRET_KEY="k" * 50, DJANGO_DEBUG="")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


PRODUCTION = {"SHOP_ENV": "production", "DJANGO_SECRET_KEY": "k" * 50, "DJANGO_DEBUG": ""}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SANDBOX_URL": None, "SANDBOX_PORT": "12999"}, "http://127.0.0.1:12999"),
        ({**PRODUCTION, "SANDBOX_URL": None, "SANDBOX_PORT": "12999"}, ""),
        ({**PRODUCTION, "SANDBOX_URL": "http://sandbox:12111"}, "http://sandbox:12111"),
    ],
)
def test_the_sandbox_control_url_defaults_to_the_local_sandbox_but_not_in_production(env, expected):
    result = load_settings("SANDBOX_URL", **env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected
