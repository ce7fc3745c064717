"""python -m benchmarks [--only checkout,pipeline,outage,billing,limit]: each against its baseline."""

from __future__ import annotations

import argparse
import datetime
import json

from benchmarks.stack import BENCH_DIR, bench_stack, fresh_bench_dir  # first: Django's database


def main() -> None:
    from benchmarks import batch_billing, checkout, load, outage, pipeline

    parser = argparse.ArgumentParser(description=__doc__)
    everything = "checkout,pipeline,outage,load,billing,limit"
    parser.add_argument("--only", default=everything, help="comma-separated benchmarks")
    parser.add_argument("--requests", type=int, default=500, help="checkout requests per side")
    parser.add_argument("--orders", type=int, default=60, help="orders pushed through the pipeline")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients of the load benchmark")
    parser.add_argument("--load-seconds", type=float, default=60, help="seconds of load, per variant")
    parser.add_argument("--billing-sizes", default="10000,100000", help="subscription counts to bill")
    parser.add_argument("--raw-charges", type=int, default=5000, help="raw SDK charges for the baseline")
    parser.add_argument(
        "--limit-size", type=int, default=2000, help="subscriptions billed per rate-limit variant (limit)"
    )
    parser.add_argument(
        "--gateway-latency-ms", type=int, default=300, help="the gateway's latency per call (limit)"
    )
    args = parser.parse_args()
    fresh_bench_dir()
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
                for n, size in enumerate(int(s) for s in args.billing_sizes.split(",")):
                    # a fresh worker per size, so its peak RSS is this size's alone; no limiter: the shop's
                    # own cost
                    stack.restart_worker(GATEWAY_RATE_LIMIT_PER_SECOND="0")
                    billing.append(batch_billing.run_size(stack, size, datetime.date(2030, 1, 1 + n)))
                    print(f"  billed {size}: {billing[-1]['billed_per_s']:.1f}/s", flush=True)
                raw = batch_billing.raw_charge_rate(stack, args.raw_charges)
                results["billing"] = {"sizes": billing, "raw_charges_per_s": raw}
                print("\n" + batch_billing.report(billing, raw), flush=True)
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
    (BENCH_DIR / "results.json").write_text(json.dumps(results, indent=2))
    print(f"\nresults saved to {BENCH_DIR / 'results.json'}")


if __name__ == "__main__":
    main()
