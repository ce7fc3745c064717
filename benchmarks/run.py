"""One database's benchmark run: `python -m benchmarks` starts one per database, each in a process of its
own (Django's database is fixed when its settings load), with BENCH_DATABASE_URL naming the database.
Writes var/bench/results-<sqlite|postgresql>.json for benchmarks/report.py."""

from __future__ import annotations

import argparse
import datetime
import json
import sys

from benchmarks.options import parser
from benchmarks.stack import BENCH_DIR, DATABASE_KIND, bench_stack, fresh_run_dir  # first: the database
from envconfig import env_str


def database_label() -> str:
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            return f"PostgreSQL {cursor.fetchone()[0].split()[0]}"
    import sqlite3

    return f"SQLite {sqlite3.sqlite_version}"


def measure(args: argparse.Namespace) -> dict[str, object]:
    from django.conf import settings

    from benchmarks import batch_billing, checkout, load, outage, pipeline

    chosen = set(args.only.split(","))
    results: dict[str, object] = {}
    if chosen & {"checkout", "pipeline", "outage", "load"}:
        with bench_stack() as stack:
            if "checkout" in chosen:
                results["checkout"] = result = checkout.run(stack, requests=args.requests)
                print(checkout.report(result), flush=True)
            if "pipeline" in chosen:
                results["pipeline"] = result = pipeline.run(stack, orders=args.orders)
                print("\n" + pipeline.report(result), flush=True)
            if "outage" in chosen:
                results["outage"] = result = outage.run(stack)
                print("\n" + outage.report(result), flush=True)
            if "load" in chosen:
                results["load"] = loads = load.run(stack, clients=args.clients, seconds=args.load_seconds)
                print("\n" + load.report(loads), flush=True)
    # One stack for both: this process enqueues billing runs, and its Celery producer keeps the broker it
    # first connected to.
    if chosen & {"billing", "limit"}:
        with bench_stack() as stack:
            if "billing" in chosen:
                billing: list[dict[str, float]] = []
                # The raw rate before and after each size, each size judged against the mean of the two
                # around it: on this kind of machine the raw rate drifted by a fifth within ten minutes.
                raws = [batch_billing.raw_charge_rate(stack, args.raw_charges)]
                for n, size in enumerate(int(s) for s in args.billing_sizes.split(",")):
                    # a fresh worker per size, so its peak RSS is this size's alone; no limiter: the shop's
                    # own cost
                    stack.restart_worker(GATEWAY_RATE_LIMIT_PER_SECOND="0")
                    result = batch_billing.run_size(stack, size, datetime.date(2030, 1, 1 + n))
                    raws.append(batch_billing.raw_charge_rate(stack, args.raw_charges))
                    result["raw_charges_per_s"] = (raws[-2] + raws[-1]) / 2
                    billing.append(result)
                    print(f"  billed {size}: {result['billed_per_s']:.1f}/s", flush=True)
                results["billing"] = {
                    "sizes": billing,
                    "raw_charges_per_s": sum(raws) / len(raws),
                    "raw_charge_runs": raws,
                    "calls_in_flight": settings.GATEWAY_CALLS_IN_FLIGHT,
                }
                print("\n" + batch_billing.report(results["billing"]), flush=True)
            if "limit" in chosen:
                at_limit: list[dict[str, float]] = []
                for n, (ours, gateway) in enumerate(batch_billing.LIMIT_VARIANTS):
                    # after the sizes' dates, before their subscriptions' next (February): only its own due
                    due = datetime.date(2030, 1, 10 + n)
                    latency = args.gateway_latency_ms
                    at_limit.append(
                        batch_billing.run_at_limit(stack, args.limit_size, due, ours, gateway, latency)
                    )
                    rate = at_limit[-1]["billed_per_s"]
                    print(f"  limiter {ours}/s, gateway {gateway or '-'}/s: {rate:.1f}/s", flush=True)
                results["limit"] = at_limit
                print("\n" + batch_billing.report_at_limit(at_limit), flush=True)
    return results


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    fresh_run_dir()
    given_redis = env_str("REDIS_URL")
    if given_redis:  # as the test suite and the chaos campaign do: the Redis database is the run's
        import redis

        redis.Redis.from_url(given_redis).flushdb()
    started = datetime.datetime.now(datetime.UTC)
    print(f"=== benchmarks on {database_label()} ===", flush=True)
    results = measure(args)
    record = {
        "database": {"kind": DATABASE_KIND, "label": database_label()},
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "options": {k: v for k, v in vars(args).items() if k != "databases"},
        "results": results,
    }
    path = BENCH_DIR / f"results-{DATABASE_KIND}.json"
    path.write_text(json.dumps(record, indent=2))
    print(f"\nresults saved to {path}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
