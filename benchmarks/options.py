"""The benchmarks' command line, shared by `python -m benchmarks` and each database's run."""

from __future__ import annotations

import argparse

BENCHMARKS = ("checkout", "pipeline", "outage", "load", "billing", "limit")


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Each benchmark against its baseline, on SQLite and (DATABASE_URL naming a PostgreSQL "
        "server) on PostgreSQL; then var/bench/report.md and a chart per benchmark.",
    )
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated benchmarks")
    parser.add_argument(
        "--databases",
        help="comma-separated: sqlite, postgresql (default: sqlite, and postgresql where DATABASE_URL or "
        "BENCH_DATABASE_URL names a PostgreSQL server)",
    )
    parser.add_argument("--requests", type=int, default=500, help="checkout requests per side")
    parser.add_argument("--orders", type=int, default=200, help="orders pushed through the pipeline")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients of the load benchmark")
    parser.add_argument("--load-seconds", type=float, default=60, help="seconds of load, per variant")
    parser.add_argument("--billing-sizes", default="10000,100000", help="subscription counts to bill")
    # As many as the smallest size bills: both windows equally long, so a slowdown of the machine passing
    # through weighs alike on each (with 5,000, the baseline's windows were half the 10,000 run's).
    parser.add_argument("--raw-charges", type=int, default=10000, help="raw SDK charges for the baseline")
    parser.add_argument(
        "--limit-size", type=int, default=2000, help="subscriptions billed per rate-limit variant (limit)"
    )
    parser.add_argument(
        "--gateway-latency-ms", type=int, default=300, help="the gateway's latency per call (limit)"
    )
    return parser
