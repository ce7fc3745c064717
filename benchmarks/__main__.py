"""python -m benchmarks [--requests N]: run every benchmark against a fresh stack and print ratios."""

from __future__ import annotations

import argparse
import json

from benchmarks.stack import BENCH_DIR, bench_stack  # first: points Django at the benchmark database


def main() -> None:
    from benchmarks import checkout, pipeline

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=500, help="checkout requests per side")
    parser.add_argument("--orders", type=int, default=60, help="orders pushed through the pipeline")
    args = parser.parse_args()
    results: dict[str, object] = {}
    with bench_stack() as stack:
        results["checkout"] = result = checkout.run(stack, requests=args.requests)
        print(checkout.report(result), flush=True)
        results["pipeline"] = result = pipeline.run(stack, orders=args.orders)
        print("\n" + pipeline.report(result), flush=True)
    (BENCH_DIR / "results.json").write_text(json.dumps(results, indent=2))
    print(f"\nresults saved to {BENCH_DIR / 'results.json'}")


if __name__ == "__main__":
    main()
