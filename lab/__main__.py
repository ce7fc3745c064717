"""python -m lab: the failure lab, naive vs correct (docs/patterns.md, "The failure lab").

    python -m lab [--only charge,breaker] [--json FILE]

Prints one table: pattern, fault, naive outcome, shop outcome, with the counts measured. Exits 1 when a
naive version did not fail its fault or the shop's did not hold.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab", description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated case names (default: all)")
    parser.add_argument("--json", type=Path, help="also write the rows, with their counts, to this file")
    args = parser.parse_args(argv)

    from lab.stack import lab_stack

    began = time.monotonic()
    with lab_stack() as lab:
        from lab.cases import CASES  # Django is set up only now, with the lab's environment

        names = args.only.split(",") if args.only else list(CASES)
        unknown = set(names) - set(CASES)
        if unknown:
            parser.error(f"unknown cases {sorted(unknown)}; known: {', '.join(CASES)}")
        rows = []
        for name in names:
            print(f"lab: {name} ...", flush=True)
            rows.append(CASES[name](lab))
    print()
    print(render(rows))
    held = sum(row.as_expected for row in rows)
    print(
        f"\n{held}/{len(rows)} rows as expected (naive fails, shop holds) in {time.monotonic() - began:.0f} s"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                [{**dataclasses.asdict(row), "as_expected": row.as_expected} for row in rows], indent=2
            )
        )
    return 0 if held == len(rows) else 1


def render(rows: list) -> str:
    """A Markdown table, so docs/patterns.md can show it as printed."""
    lines = ["| pattern | fault | naive outcome | shop outcome |", "|---|---|---|---|"]
    for row in rows:
        naive = ("FAILS: " if row.naive.failed else "did not fail: ") + row.naive.outcome
        shop = ("holds: " if not row.shop.failed else "BROKEN: ") + row.shop.outcome
        lines.append(f"| {row.pattern} | {row.fault} | {naive} | {shop} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
