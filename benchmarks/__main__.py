"""python -m benchmarks [--only checkout,pipeline,outage,load,billing,limit] [--databases sqlite,postgresql]

Each benchmark against its baseline, once per database: on SQLite, and on PostgreSQL where DATABASE_URL
(or BENCH_DATABASE_URL) names a PostgreSQL server. Each database's run is a process of its own
(`benchmarks.run`: Django's database is fixed when its settings load) and saves
var/bench/results-<database>.json; then benchmarks/report.py writes var/bench/report.md, the charts and
var/bench/readme-figures.md (`python -m benchmarks.report` redoes that from the saved results).

This process does not load Django: it only decides the databases and starts the runs.
"""

from __future__ import annotations

import datetime
import os
import shlex
import shutil
import subprocess
import sys
from urllib.parse import urlsplit, urlunsplit

from benchmarks.options import BENCHMARKS, parser
from chaos.environment import run_on_server
from devstack.runtime import VAR_DIR
from envconfig import env_str

BENCH_DIR = VAR_DIR / "bench"
POSTGRES_SCHEMES = ("postgres", "postgresql")


def _is_postgres(url: str | None) -> bool:
    return bool(url) and urlsplit(url).scheme in POSTGRES_SCHEMES


def postgres_database() -> tuple[str, str | None]:
    """The PostgreSQL benchmark database's URL, and the server it was created on (to drop it after), or
    None where BENCH_DATABASE_URL names one to use as it is. Created afresh for the run from DATABASE_URL:
    bench_<name>_<pid>, so the shop's own database is never touched."""
    given = env_str("BENCH_DATABASE_URL")
    if _is_postgres(given):
        return given, None
    server = env_str("DATABASE_URL")
    name = f"bench_{urlsplit(server).path.lstrip('/') or 'shop'}_{os.getpid()}"
    run_on_server(server, f'CREATE DATABASE "{name}"')
    return urlunsplit(urlsplit(server)._replace(path=f"/{name}")), server


def sqlite_database() -> str:
    given = env_str("BENCH_DATABASE_URL")
    if given and not _is_postgres(given):
        return given
    return f"sqlite:///{BENCH_DIR / 'sqlite' / 'bench.sqlite3'}"


def chosen_databases(option: str | None) -> list[str]:
    if option:
        databases = [d.strip() for d in option.split(",") if d.strip()]
        unknown = set(databases) - {"sqlite", "postgresql"}
        if unknown:
            raise SystemExit(f"--databases: unknown {', '.join(sorted(unknown))} (sqlite, postgresql)")
        if "postgresql" in databases and not (
            _is_postgres(env_str("DATABASE_URL")) or _is_postgres(env_str("BENCH_DATABASE_URL"))
        ):
            raise SystemExit("--databases postgresql needs DATABASE_URL naming a PostgreSQL server")
        return databases
    postgres = _is_postgres(env_str("DATABASE_URL")) or _is_postgres(env_str("BENCH_DATABASE_URL"))
    return ["sqlite", "postgresql"] if postgres else ["sqlite"]


def run_one(database: str, argv: list[str]) -> int:
    """One database's run in a process of its own; its exit status."""
    dropped_on = None
    if database == "postgresql":
        url, dropped_on = postgres_database()
    else:
        url = sqlite_database()
    try:
        env = {**os.environ, "BENCH_DATABASE_URL": url}
        return subprocess.call([sys.executable, "-m", "benchmarks.run", *argv], env=env)
    finally:
        if dropped_on:
            name = urlsplit(url).path.lstrip("/")
            run_on_server(dropped_on, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    unknown = set(args.only.split(",")) - set(BENCHMARKS)
    if unknown:
        raise SystemExit(f"--only: unknown {', '.join(sorted(unknown))} ({', '.join(BENCHMARKS)})")
    databases = chosen_databases(args.databases)
    # A fresh var/bench: the report shows this run's results only.
    shutil.rmtree(BENCH_DIR, ignore_errors=True)
    BENCH_DIR.mkdir(parents=True)
    from benchmarks import report

    report.save_run_info(BENCH_DIR, shlex.join(["python", "-m", "benchmarks", *argv]), databases)
    failed = [database for database in databases if run_one(database, argv) != 0]
    report.finish_run_info(BENCH_DIR, datetime.datetime.now(datetime.UTC))
    written = report.write_report(BENCH_DIR)
    print("\n" + "\n".join(f"wrote {path}" for path in written))
    if failed:
        print(f"the run on {', '.join(failed)} failed: see its output above", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
