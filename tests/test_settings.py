"""Settings refuse unsafe production configurations before anything starts."""

from __future__ import annotations

import subprocess
import sys

import pytest

from shop.processes import base_env


def load_settings(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)",
        ],
        env=base_env(**env),
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
