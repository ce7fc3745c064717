"""SHOP_ENV=production: Django's deploy check is clean, HTTPS is enforced, development helpers are gone.

Each test runs a fresh process with a production environment: settings are read once, at start-up.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management.utils import get_random_secret_key

from devstack.processes import HOST, base_env, free_port

ROOT = Path(__file__).resolve().parent.parent
# Unset unless a test sets them, whatever the developer's shell holds.
CHOSEN_HERE = (
    "DJANGO_DEBUG",
    "SHOP_HTTPS",
    "SHOP_SSL_REDIRECT",
    "SHOP_HSTS_SECONDS",
    "SHOP_BENCHMARK_ENDPOINTS",
)


def run(argv: list[str], production: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
    environ = base_env(**env)
    for name in CHOSEN_HERE:
        if name not in env:
            environ.pop(name, None)
    if production:
        environ.update(SHOP_ENV="production", DJANGO_SECRET_KEY=get_random_secret_key())
    else:
        environ.pop("SHOP_ENV", None)
    # A database and a broker of the probe's own (none listens there): it touches no one else's.
    environ.update(DATABASE_URL="sqlite://:memory:", REDIS_URL=f"redis://{HOST}:{free_port()}/0")
    return subprocess.run(argv, env=environ, cwd=ROOT, capture_output=True, text=True, timeout=120)


def probe(code: str, production: bool = True, **env: str) -> object:
    """What `code` prints as JSON, run after django.setup() in a fresh process."""
    result = run([sys.executable, "-c", f"import django, json; django.setup()\n{code}"], production, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_deploy_check_is_clean():
    result = run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


HTTPS_PROBE = """
from django.conf import settings
from django.test import Client
client = Client()
plain, secure = client.get("/no-such-page/"), client.get("/no-such-page/", secure=True)
print(json.dumps({
    "cookies_secure": [settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE],
    "plain_http": [plain.status_code, plain.get("Location")],
    "healthz_over_plain_http": client.get("/healthz").status_code,
    "hsts": secure.get("Strict-Transport-Security"),
}))
"""


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        pytest.param(
            {},
            {
                "cookies_secure": [True, True],
                "plain_http": [301, "https://testserver/no-such-page/"],
                "healthz_over_plain_http": 503,  # answered (the broker is down), not redirected
                "hsts": "max-age=31536000; includeSubDomains",
            },
            id="production",
        ),
        pytest.param(
            {"SHOP_HSTS_SECONDS": "3600", "SHOP_SSL_REDIRECT": "0"},
            {
                "cookies_secure": [True, True],
                "plain_http": [404, None],
                "healthz_over_plain_http": 503,
                "hsts": "max-age=3600; includeSubDomains",
            },
            id="proxy-redirects-and-short-hsts",
        ),
        pytest.param(
            {"SHOP_HTTPS": "0"},
            {
                "cookies_secure": [False, False],
                "plain_http": [404, None],
                "healthz_over_plain_http": 503,
                "hsts": None,
            },
            id="plain-http",
        ),
    ],
)
def test_production_serves_https_only_unless_told_otherwise(env, expected):
    assert probe(HTTPS_PROBE, **env) == expected


ROUTED_PROBE = """
from django.urls import Resolver404, resolve
try:
    resolve({path!r})
    print(json.dumps(True))
except Resolver404:
    print(json.dumps(False))
"""


@pytest.mark.parametrize(("production", "routed"), [(True, False), (False, True)])
@pytest.mark.parametrize(
    "path",
    [
        "/bench/orders-without-enqueue",  # a benchmark's baseline
        "/ops/chaos/",  # the chaos panel: it starts fault campaigns on the server (shop/chaos_panel.py)
    ],
)
def test_development_endpoints_are_never_routed_in_production(path, production, routed):
    assert probe(ROUTED_PROBE.format(path=path), production, SHOP_BENCHMARK_ENDPOINTS="1") is routed


def test_the_ops_page_has_no_chaos_panel_in_production():
    assert probe("from django.conf import settings; print(json.dumps(settings.CHAOS_PANEL))") is False
