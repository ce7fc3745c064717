"""What the campaign decides before Django loads: its folder, its database, its ports and the timings.

Every process of the campaign's stack (and the runner itself) reads the same environment, built here and
put into `os.environ` before `django.setup()`, so the runner's checks see what the workers see.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from devstack.runtime import VAR_DIR, pid_alive
from envconfig import env_str

CHAOS_DIR = VAR_DIR / "chaos"

# The shop's timings during a campaign: recovery must happen within the run, not on production's
# hour-long scales. Each says why; together they decide the settle bound (chaos/campaign.py).
TIMINGS = {
    # A message taken by a worker killed whole comes back after 10 s (production: an hour), looked for
    # every second: the test stack's values (tests/conftest.py).
    "CELERY_VISIBILITY_TIMEOUT": "10",
    "CELERY_UNACKED_RESTORE_INTERVAL": "1",
    "CELERY_UNACKED_RESTORE_THROTTLE": "1",
    # The sweep runs every 2 s and moves on work unchanged for 15 s: longer than the visibility timeout
    # and any retry backoff below, so it finds lost messages, not slow ones (the test stack's values).
    "SWEEP_INTERVAL_SECONDS": "2",
    "SWEEP_STUCK_AFTER_SECONDS": "15",
    # Retries 1, 2, 4, 4 ... s apart (full jitter): a job rides out a short fault within the window.
    # Six retries then span up to ~19 s, longer than the 5 s database blip and broker outage.
    "JOB_RETRY_BACKOFF_SECONDS": "1",
    "JOB_RETRY_BACKOFF_MAX_SECONDS": "4",
    # Breakers count failures over 10 s and probe every 3 s: a 30 s gateway outage sees about ten probes,
    # and work resumes within 3 s of its end.
    "BREAKER_WINDOW_SECONDS": "10",
    "BREAKER_COOLDOWN_SECONDS": "3",
    "JOB_DEFER_JITTER_SECONDS": "0.5",
}
# Settings that must not leak from the caller's shell into the campaign: real outside services, test
# hooks, debug mode (every process would keep each of its queries in memory). The campaign sets its own
# addresses for the sandbox's services.
CLEARED = {
    "STRIPE_SECRET_KEY", "SANDBOX_URL", "CARRIER_API_BASE", "CARRIER_API_KEY", "EMAIL_HOST",
    "EMAIL_HOST_USER", "EMAIL_HOST_PASSWORD", "EMAIL_USE_TLS", "SHOP_CRASH_AT", "SHOP_CRASH_MARKER",
    "SHOP_FAIL_AT", "SHOP_BENCHMARK_ENDPOINTS", "DJANGO_DEBUG",
}  # fmt: skip
JOBS_APPLICATION = "chaos-jobs"  # PostgreSQL application_name of worker connections (the blip's target)
WEB_APPLICATION = "chaos-web"


@dataclass(frozen=True)
class Ports:
    redis: int
    sandbox: int
    smtp: int
    web: int


@dataclass(frozen=True)
class Database:
    """The campaign's own database: a fresh SQLite file, or a fresh database on a PostgreSQL server."""

    url: str  # as the runner uses it
    server_url: str | None  # PostgreSQL: where it was created (and is dropped); None for SQLite

    @property
    def postgres(self) -> bool:
        return self.server_url is not None

    @property
    def name(self) -> str:
        """The PostgreSQL database's name, or the SQLite file's path."""
        name = urlsplit(self.url).path.lstrip("/")
        return name if self.postgres else f"/{name}"

    def for_application(self, application: str) -> str:
        """The URL a process connects with, named so the database blip can pick its connections."""
        return _with_query(self.url, application_name=application) if self.postgres else self.url

    def drop(self) -> None:
        if self.server_url is not None:
            run_on_server(self.server_url, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def workdir(base: Path = CHAOS_DIR) -> Path:
    """<base>/run-<pid> (var/chaos/ by default): logs, sandbox state, SQLite database, media; earlier
    finished runs' go."""
    for old in base.glob("run-*"):
        if not pid_alive(int(old.name.removeprefix("run-") or 0)):
            shutil.rmtree(old, ignore_errors=True)
    path = base / f"run-{os.getpid()}"
    (path / "log").mkdir(parents=True)
    return path


def create_database(folder: Path, prefix: str = "chaos") -> Database:
    """DATABASE_URL names a PostgreSQL server: a database of the campaign's own is created there.
    Unset: a SQLite file in the campaign's folder."""
    given = env_str("DATABASE_URL")
    if not given:
        return Database(f"sqlite:///{folder / 'shop.sqlite3'}", None)
    if urlsplit(given).scheme not in {"postgres", "postgresql"}:
        raise SystemExit("DATABASE_URL must name a PostgreSQL server (unset it to run on SQLite).")
    name = f"{prefix}_{urlsplit(given).path.lstrip('/') or 'shop'}_{os.getpid()}"
    run_on_server(given, f'CREATE DATABASE "{name}"')
    return Database(urlunsplit(urlsplit(given)._replace(path=f"/{name}")), given)


def run_on_server(server_url: str, statement: str) -> None:
    """One statement on `server_url`'s PostgreSQL server, outside a transaction (CREATE/DROP DATABASE)."""
    import psycopg

    parts = urlsplit(server_url)
    with psycopg.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=parts.username,
        password=parts.password,
        dbname="postgres",  # the server's maintenance database, as Django's test runner uses it: the
        # database DATABASE_URL names need not exist
        autocommit=True,  # CREATE/DROP DATABASE cannot run in a transaction
    ) as connection:
        connection.execute(statement)


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(params)
    return urlunsplit(parts._replace(query=urlencode(query)))


def apply(folder: Path, database: Database, ports: Ports, redis_url: str) -> dict[str, str]:
    """Put the campaign's environment into os.environ (for the runner's own settings) and return it."""
    kept = {name: value for name, value in os.environ.items() if name not in CLEARED}
    os.environ.clear()
    os.environ.update(kept)
    web_url = f"http://127.0.0.1:{ports.web}"
    os.environ.update(
        TIMINGS,
        DJANGO_SETTINGS_MODULE="shop.settings",
        SHOP_ENV="development",
        DATABASE_URL=database.url,
        REDIS_URL=redis_url,
        MEDIA_ROOT=str(folder / "media"),
        SANDBOX_PORT=str(ports.sandbox),
        SANDBOX_SMTP_PORT=str(ports.smtp),
        STRIPE_API_BASE=f"http://127.0.0.1:{ports.sandbox}",
        # Signed by the campaign's sandbox, checked by the campaign's web server; nothing else knows it.
        STRIPE_WEBHOOK_SECRET=f"whsec_{secrets.token_urlsafe(24)}",
        SHOP_BASE_URL=web_url,
    )
    return dict(os.environ)
