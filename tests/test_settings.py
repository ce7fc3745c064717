"""Settings refuse unsafe or malformed configurations before anything starts, and keep test sessions apart."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management.utils import get_random_secret_key
from django.db import connection

from chaos import environment as chaos_environment
from devstack.management.commands import demo
from devstack.processes import base_env
from jobkit.breaker import SERVICES
from tests.conftest import TEST_VAR


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


PRODUCTION = {"SHOP_ENV": "production", "DJANGO_SECRET_KEY": get_random_secret_key(), "DJANGO_DEBUG": ""}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SHOP_ENV": "production", "DJANGO_SECRET_KEY": ""}, "DJANGO_SECRET_KEY"),
        ({"SHOP_ENV": "production", "DJANGO_SECRET_KEY": "short"}, "DJANGO_SECRET_KEY"),
        ({**PRODUCTION, "DJANGO_SECRET_KEY": PRODUCTION["DJANGO_SECRET_KEY"][:49]}, "DJANGO_SECRET_KEY"),
        ({**PRODUCTION, "DJANGO_SECRET_KEY": "abcd" * 20}, "DJANGO_SECRET_KEY"),  # 4 different characters
        ({**PRODUCTION, "DJANGO_DEBUG": "1"}, "DJANGO_DEBUG"),
        ({**PRODUCTION, "SHOP_CRASH_AT": "after_gateway_charge"}, "SHOP_CRASH_AT is a test hook"),
        ({**PRODUCTION, "SHOP_FAIL_AT": "grant_entitlement"}, "SHOP_FAIL_AT is a test hook"),
        ({**PRODUCTION, "SANDBOX_URL": "http://sandbox:12111"}, "SANDBOX_URL (the sandbox's fault switches)"),
        ({"SHOP_ENV": "prod"}, "SHOP_ENV must be one of development, production"),
        ({"DB_CONN_MAX_AGE": "forever"}, "DB_CONN_MAX_AGE must be an integer"),
        ({"MEDIA_ROOT": "var/media"}, "MEDIA_ROOT must be an absolute path"),
        (
            {"CELERY_VISIBILITY_TIMEOUT": "200", "JOB_RETRY_BACKOFF_MAX_SECONDS": "300"},
            "CELERY_VISIBILITY_TIMEOUT (200 s) must be longer than the longest countdown the shop sends, "
            "JOB_RETRY_BACKOFF_MAX_SECONDS (300 s)",
        ),
        (
            {
                "CELERY_VISIBILITY_TIMEOUT": "20",
                "JOB_RETRY_BACKOFF_MAX_SECONDS": "5",
                "BREAKER_COOLDOWN_SECONDS": "19",
                "JOB_DEFER_JITTER_SECONDS": "2",
            },
            "BREAKER_COOLDOWN_SECONDS + JOB_DEFER_JITTER_SECONDS (21 s)",
        ),
    ],
)
def test_unsafe_or_malformed_settings_refuse_to_start(env, message):
    result = load_settings(**env)
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.parametrize(
    "timings", [chaos_environment.TIMINGS, demo.DEMO_TIMINGS, {"CELERY_VISIBILITY_TIMEOUT": "3600"}]
)
def test_the_shops_own_timings_keep_every_countdown_below_the_visibility_timeout(timings):
    """The fault campaign's and the failure lab's stack (chaos/environment.py), the demo's, production's
    default: each loads (trap A, kombu issue 337: a countdown past the visibility timeout is redelivered),
    and a worker killed while restoring unacked messages holds kombu's restore lock no longer than a
    killed worker's message waits anyway (kombu's own default is 300 s)."""
    defaults = {"JOB_RETRY_BACKOFF_MAX_SECONDS": None, "BREAKER_COOLDOWN_SECONDS": None}
    result = load_settings("CELERY_BROKER_TRANSPORT_OPTIONS", **{**defaults, **timings})
    assert result.returncode == 0, result.stderr
    transport = ast.literal_eval(result.stdout.strip())
    assert 0 < transport["unacked_mutex_expire"] <= transport["visibility_timeout"]


def test_production_with_a_real_key_starts_with_debug_off():
    result = load_settings(**PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SANDBOX_URL": None, "SANDBOX_PORT": "12999"}, "http://127.0.0.1:12999"),
        ({"SANDBOX_URL": "http://sandbox:12111"}, "http://sandbox:12111"),
        ({**PRODUCTION, "SANDBOX_URL": None, "SANDBOX_PORT": "12999"}, ""),
    ],
)
def test_the_sandbox_control_url_defaults_to_the_local_sandbox_but_not_in_production(env, expected):
    result = load_settings("SANDBOX_URL", **env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


def test_media_root_comes_from_the_environment():
    result = load_settings("MEDIA_ROOT", MEDIA_ROOT="/srv/shop-media")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "/srv/shop-media"


def test_every_outside_service_has_a_circuit_breaker_tuned_by_the_environment():
    result = load_settings("CIRCUIT_BREAKERS", BREAKER_COOLDOWN_SECONDS="7")
    assert result.returncode == 0, result.stderr
    breakers = ast.literal_eval(result.stdout)
    assert sorted(breakers) == sorted(SERVICES)
    assert {options["cooldown_seconds"] for options in breakers.values()} == {7.0}


@pytest.mark.django_db
def test_this_test_session_has_a_database_and_media_files_of_its_own():
    # Named by this process's id, on SQLite (a file) and PostgreSQL (a database on a shared server) alike.
    assert Path(connection.settings_dict["NAME"]).stem.endswith(f"_{os.getpid()}")
    assert Path(settings.MEDIA_ROOT) == TEST_VAR / "media"
