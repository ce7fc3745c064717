"""The benchmarks' report: var/bench/report.md, a PNG chart per benchmark, and var/bench/readme-figures.md
(the aims table, ready to paste into README.md), from the results each database's run saved.

    python -m benchmarks.report [--dir var/bench]

redoes them from the saved results-<database>.json, without measuring again. Loads no Django.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.runtime import VAR_DIR

BENCH_DIR = VAR_DIR / "bench"
ROOT = Path(__file__).resolve().parent.parent
DATABASES = ("sqlite", "postgresql")  # the report's order
COLORS = {"sqlite": "tab:blue", "postgresql": "tab:orange"}
PASS, FAIL, NOT_JUDGED = "✓", "✗", "(not judged)"

Results = dict[str, Any]


# --- what the run was -------------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def git_commit() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}{' (with uncommitted changes)' if dirty else ''}"


def machine() -> dict[str, object]:
    return {
        "cores": os.cpu_count(),
        "cpu": cpu_model(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def save_run_info(folder: Path, command: str, databases: list[str]) -> None:
    """run.json: what the report says about the run as a whole (the results say what was measured)."""
    info = {
        "command": command,
        "databases": databases,
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "machine": machine(),
    }
    (folder / "run.json").write_text(json.dumps(info, indent=2))


def finish_run_info(folder: Path, finished: datetime.datetime) -> None:
    path = folder / "run.json"
    info = json.loads(path.read_text())
    info["finished"] = finished.isoformat(timespec="seconds")
    path.write_text(json.dumps(info, indent=2))


def load(folder: Path) -> tuple[dict[str, Any], dict[str, Results]]:
    """run.json (or what can be said now, where it is missing) and each database's saved results."""
    runs = {}
    for kind in DATABASES:
        path = folder / f"results-{kind}.json"
        if path.exists():
            runs[kind] = json.loads(path.read_text())
    try:
        info = json.loads((folder / "run.json").read_text())
    except (OSError, ValueError):
        info = {"command": "unknown", "git_commit": git_commit(), "machine": machine()}
        starts = [run["started"] for run in runs.values() if "started" in run]
        if starts:
            info["started"] = min(starts)
    return info, runs


# --- the aims ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    text: str  # the measured figure, as the table shows it
    mark: str  # PASS, FAIL or NOT_JUDGED

    def cell(self) -> str:
        return f"{self.text} {self.mark}"


NOT_RUN = Verdict("not run", NOT_JUDGED)


def _judge(ok: bool) -> str:
    return PASS if ok else FAIL


def _limit_variant(results: Results, ours: int, gateway: int) -> dict[str, Any] | None:
    return next(
        (r for r in results.get("limit", []) if r["our_limit"] == ours and r["gateway_limit"] == gateway),
        None,
    )


def aim_billing_vs_raw(results: Results, kind: str) -> Verdict:
    billing = results.get("billing")
    if not billing or not billing["sizes"]:
        return NOT_RUN
    worst = min(billing["sizes"], key=lambda s: s["billed_per_s"] / s["raw_charges_per_s"])
    ratio = worst["billed_per_s"] / worst["raw_charges_per_s"]
    where = f" (worst size, {worst['size']:,})" if len(billing["sizes"]) > 1 else ""
    return Verdict(f"{ratio:.2f}{where}", _judge(ratio >= 0.7))


def _at_limit(ours: int, gateway: int, aim: float, postgres_only: bool = False) -> Callable[..., Verdict]:
    def judge(results: Results, kind: str) -> Verdict:
        r = _limit_variant(results, ours, gateway)
        if r is None:
            return NOT_RUN
        text = f"{r['of_limit']:.2f} ({r['billed_per_s']:.1f}/s)"
        ok = r["of_limit"] >= aim
        if gateway:  # the gateway refuses above its limit: every invoice charged once, none twice
            if "charged_invoices" in r:
                lost, doubled = r["size"] - r["charged_invoices"], r["doubled_invoices"]
                text += f"; lost {lost}, doubled {doubled}"
                ok = ok and lost == 0 and doubled == 0
            else:
                text += "; lost/doubled not recorded"
        if postgres_only and kind != "postgresql":
            return Verdict(f"{text}; aim is for PostgreSQL", NOT_JUDGED)
        return Verdict(text, _judge(ok))

    return judge


def aim_rss(results: Results, kind: str) -> Verdict:
    billing = results.get("billing")
    if not billing or len(billing["sizes"]) < 2:
        return NOT_RUN if not billing else Verdict("one size only", NOT_JUDGED)
    sizes = sorted(billing["sizes"], key=lambda s: s["size"])
    small, large = sizes[0], sizes[-1]
    growth = large["peak_rss_mb"] / small["peak_rss_mb"]
    return Verdict(f"{growth:.2f}x ({large['size']:,} vs {small['size']:,})", _judge(growth <= 1.2))


def aim_pipeline(results: Results, kind: str) -> Verdict:
    r = results.get("pipeline")
    if not r:
        return NOT_RUN
    return Verdict(f"{r['ratio']:.2f}", _judge(r["ratio"] >= 0.8))


def aim_checkout(results: Results, kind: str) -> Verdict:
    r = results.get("checkout")
    if not r:
        return NOT_RUN
    ok = r["ratio_median"] <= 1.3 and r["ratio_p95"] <= 1.3
    return Verdict(f"median {r['ratio_median']:.2f}x, p95 {r['ratio_p95']:.2f}x", _judge(ok))


def _load(results: Results) -> tuple[dict[str, Any], dict[str, Any]] | None:
    loads = results.get("load")
    if not loads:
        return None
    up = next(r for r in loads if not r["gateway_down"])
    down = next(r for r in loads if r["gateway_down"])
    return up, down


def aim_load_errors(results: Results, kind: str) -> Verdict:
    pair = _load(results)
    if pair is None:
        return NOT_RUN
    up, down = pair
    text = f"{up['errors']} (gateway up), {down['errors']} (down); {up['per_s']:.1f} orders/s"
    return Verdict(text, _judge(up["errors"] == 0 and down["errors"] == 0))


def aim_load_down(results: Results, kind: str) -> Verdict:
    pair = _load(results)
    if pair is None:
        return NOT_RUN
    up, down = pair
    ratio = down["p50_ms"] / up["p50_ms"]
    # The run fails unless every accepted order completed: a saved result means they all did.
    text = f"{ratio:.2f}x; all completed {down['all_completed_after_s']:.0f} s after the start"
    return Verdict(text, _judge(ratio <= 1.2))


@dataclass(frozen=True)
class Aim:
    figure: str
    aim: str
    judge: Callable[[Results, str], Verdict]


AIMS = (
    Aim(
        "billing, local gateway (no added latency): billed/s vs raw SDK charges at the same concurrency",
        ">= 0.7",
        aim_billing_vs_raw,
    ),
    Aim(
        "billing, gateway latency 300 ms, rate limit 25/s: billed/s vs the limit",
        ">= 0.9 (22.5/s)",
        _at_limit(25, 0, 0.9),
    ),
    Aim(
        "billing, gateway latency 300 ms, rate limit 100/s: billed/s vs the limit",
        ">= 0.9 on PostgreSQL",
        _at_limit(100, 0, 0.9, postgres_only=True),
    ),
    Aim(
        "billing, gateway enforcing 25/s with 429s and our limiter set to 30/s: nothing lost or doubled; "
        "billed/s vs 25",
        ">= 0.8",
        _at_limit(30, 25, 0.8),
    ),
    Aim("billing peak worker RSS, 100k vs 10k subscriptions", "<= 1.2x", aim_rss),
    Aim("pipeline completed orders/s vs raw WeasyPrint renders/s, same processes", ">= 0.8", aim_pipeline),
    Aim("checkout median and p95 vs insert-only baseline", "<= 1.3x", aim_checkout),
    Aim("load: errors during the run (gateway up, gateway down)", "0", aim_load_errors),
    Aim(
        "load, gateway down the whole run: checkout p50 vs gateway up; every order completes after recovery",
        "<= 1.2x",
        aim_load_down,
    ),
)


def label(run: Results) -> str:
    return run["database"]["label"]


def aims_table(runs: dict[str, Results]) -> str:
    lines = [
        "| figure | aim | " + " | ".join(label(run) for run in runs.values()) + " |",
        "|---|---|" + "---|" * len(runs),
    ]
    for aim in AIMS:
        cells = [aim.judge(run["results"], kind).cell() for kind, run in runs.items()]
        lines.append(f"| {aim.figure} | {aim.aim} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --- the report's sections --------------------------------------------------------------------------------
def _table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def section_checkout(r: Results) -> str:
    """The pair with the worker running (the aim's figure), then with it paused: what the enqueue costs
    by itself, without the worker's processes competing with the web process for the CPU."""
    rows = []
    for when, pair in (("worker running", r), ("worker paused", r.get("worker_paused"))):
        if pair is None:
            continue
        c, b = pair["checkout"], pair["baseline"]
        rows += [
            [
                f"{when}: checkout, POST /api/orders (insert + enqueue)",
                f"{c['median_ms']:.2f}",
                f"{c['p95_ms']:.2f}",
                c["count"],
            ],
            [
                f"{when}: baseline, same inserts, no enqueue",
                f"{b['median_ms']:.2f}",
                f"{b['p95_ms']:.2f}",
                b["count"],
            ],
            [f"{when}: checkout / baseline", f"{pair['ratio_median']:.2f}x", f"{pair['ratio_p95']:.2f}x", ""],
        ]
    return _table(["", "median (ms)", "p95 (ms)", "requests"], rows)  # fmt: skip


def section_pipeline(r: Results) -> str:
    return _table(
        ["", "per second"],
        [
            [f"pipeline: orders completed (1 worker, 2 processes; {r['orders']} orders)",
             f"{r['pipeline_per_s']:.2f}"],
            ["raw WeasyPrint renders of the same invoice (1 process; mean of before and after: "
             f"{', '.join(f'{rate:.2f}' for rate in r['render_runs'])})", f"{r['render_per_s']:.2f}"],
            ["pipeline / raw render", f"{r['ratio']:.2f}x"],
        ],
    )  # fmt: skip


def section_outage(r: Results) -> str:
    return _table(
        ["orders placed", "outage (s)", "calls reaching the down gateway", "per order"],
        [[r["orders"], f"{r['outage_seconds']:.0f}", r["calls"], f"{r['per_order']:.2f}"]],
    )


def section_load(loads: list[Results]) -> str:
    rows = [
        [
            "down" if r["gateway_down"] else "up",
            r["clients"],
            f"{r['seconds']:.0f}",
            r["orders"],
            f"{r['per_s']:.1f}",
            f"{r['p50_ms']:.1f}",
            f"{r['p95_ms']:.1f}",
            f"{r['p99_ms']:.1f}",
            r["errors"],
            f"{r['all_completed_after_s']:.0f}",
        ]
        for r in loads
    ]
    header = ["gateway", "clients", "seconds", "orders", "orders/s", "p50 (ms)", "p95 (ms)", "p99 (ms)",
              "errors", "all completed after (s)"]  # fmt: skip
    text = _table(header, rows)
    errors = [e for r in loads for e in r.get("first_errors", [])]
    if errors:
        text += "\n\nFirst errors: " + "; ".join(f"`{e}`" for e in errors[:5])
    return text


def section_billing(r: Results) -> str:
    rows = [
        [f"{s['size']:,}", f"{s['billed_per_s']:.1f}", f"{s['seconds']:.0f}", f"{s['raw_charges_per_s']:.1f}",
         f"{s['billed_per_s'] / s['raw_charges_per_s']:.2f}", f"{s['peak_rss_mb']:.0f}"]
        for s in r["sizes"]
    ]  # fmt: skip
    in_flight = r.get("calls_in_flight", "?")
    runs = ", ".join(f"{raw:.1f}" for raw in r["raw_charge_runs"])
    return (
        f"Raw SDK charges at the same concurrency (2 processes x {in_flight} threads), measured before the "
        f"first size and after each: {runs}/s. Each size is judged against the mean of the two around it.\n\n"
        + _table(
            ["subscriptions", "billed/s", "seconds", "raw/s around it", "vs raw", "peak worker RSS (MB)"],
            rows,
        )
    )


def section_limit(results: list[Results]) -> str:
    rows = []
    for r in results:
        rows.append(
            [
                f"{r['our_limit']}/s",
                f"{r['gateway_limit']}/s" if r["gateway_limit"] else "none",
                r["latency_ms"],
                r["size"],
                f"{r['billed_per_s']:.1f}",
                f"{r['of_limit']:.2f}",
                f"{r['seconds']:.0f}",
                r["refused_429"],
                r.get("charged_invoices", "?"),
                r.get("doubled_invoices", "?"),
            ]
        )
    header = ["our limiter", "gateway's limit", "latency (ms)", "subscriptions", "billed/s", "vs limit",
              "seconds", "429s", "invoices charged", "charged twice"]  # fmt: skip
    return _table(header, rows)


SECTIONS: tuple[tuple[str, str, str, Callable[[Any], str]], ...] = (
    # (results key, title, what it measures, table writer)
    ("checkout", "Checkout latency",
     "`POST /api/orders` with the worker running, one sequential client, against the same request minus "
     "the enqueue (`/bench/orders-without-enqueue`), in interleaved blocks.", section_checkout),
    ("pipeline", "Order pipeline throughput",
     "Orders from checkout to `completed` (charge, PDF, two emails, shipment) per second, against raw "
     "WeasyPrint renders of the same invoice measured in the same run.", section_pipeline),
    ("outage", "Gateway outage",
     "Orders placed while the payments gateway is down: how many calls reach it (the circuit breaker's "
     "threshold plus one probe per cooldown, not one per retry); every order completes after.",
     section_outage),
    ("load", "Load",
     "Concurrent clients placing orders for a fixed time, with the gateway up and then down for the whole "
     "run (it comes back when the load stops); time until every accepted order is `completed`.",
     section_load),
    ("billing", "Batch billing",
     "Subscriptions billed per second by a billing run, the gateway answering at once and no rate limiter "
     "(the shop's own cost), against raw SDK charges; the billing worker's peak RSS per size (a fresh "
     "worker per size).", section_billing),
    ("limit", "Batch billing at the rate limit",
     "Billed per second against the limit, the gateway answering each call after a latency: our limiter "
     "at 25/s and 100/s, and at 30/s against a gateway enforcing 25/s with 429s.", section_limit),
)  # fmt: skip


def _when(info: dict[str, Any]) -> str:
    started = info.get("started")
    return started.replace("T", " ").replace("+00:00", " UTC") if started else "unknown date"


def _machine_line(info: dict[str, Any]) -> str:
    m = info.get("machine") or machine()
    return f"{m.get('cores')} cores ({m.get('cpu')}), {m.get('system', '')}, Python {m.get('python', '?')}"


def report_markdown(info: dict[str, Any], runs: dict[str, Results], charts: dict[str, str]) -> str:
    lines = [
        "# Benchmark report",
        "",
        f"- command: `{info.get('command', 'unknown')}`",
        f"- machine: {_machine_line(info)}",
        f"- date: {_when(info)}"
        + (f" to {_when({'started': info['finished']})}" if "finished" in info else ""),
        f"- git commit: {info.get('git_commit', 'unknown')}",
        "- databases: " + (", ".join(label(run) for run in runs.values()) or "none measured"),
        "",
        "## Aims",
        "",
        f"{PASS} meets the aim, {FAIL} misses it; {NOT_JUDGED}: not run, or the aim is for another database.",
        "",
        aims_table(runs) if runs else "No results found.",
    ]
    for key, title, about, writer in SECTIONS:
        measured = {kind: run for kind, run in runs.items() if key in run["results"]}
        if not measured:
            continue
        lines += ["", f"## {title}", "", about]
        if key in charts:
            lines += ["", f"![{title}]({charts[key]})"]
        for run in measured.values():
            lines += ["", f"### {label(run)}", "", writer(run["results"][key])]
    options = {json.dumps(run.get("options"), sort_keys=True) for run in runs.values()}
    if len(options) == 1:
        lines += ["", "## Options", "", "```", json.dumps(json.loads(options.pop()), indent=2), "```"]
    return "\n".join(lines) + "\n"


def readme_figures(info: dict[str, Any], runs: dict[str, Results]) -> str:
    """The README's "Latest figures", ready to paste."""
    return "\n".join(
        [
            f"Measured with `{info.get('command', 'unknown')}` on {_machine_line(info)}, {_when(info)}, "
            f"commit {info.get('git_commit', 'unknown')}. {PASS} meets the aim, {FAIL} misses it.",
            "",
            aims_table(runs),
        ]
    ) + "\n"  # fmt: skip


# --- the charts ---------------------------------------------------------------------------------------------
def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _bar_offsets(count: int, width: float = 0.8) -> tuple[list[float], float]:
    bar = width / max(count, 1)
    return [(i - (count - 1) / 2) * bar for i in range(count)], bar


def chart_billing(plt: Any, runs: dict[str, Results], path: Path) -> None:
    fig, (rate_ax, rss_ax) = plt.subplots(1, 2, figsize=(12, 5))
    sizes = sorted({s["size"] for run in runs.values() for s in run["results"]["billing"]["sizes"]})
    offsets, bar = _bar_offsets(len(runs))
    for (kind, run), offset in zip(runs.items(), offsets, strict=True):
        billing = run["results"]["billing"]
        by_size = {s["size"]: s for s in billing["sizes"]}
        xs = [i + offset for i, size in enumerate(sizes) if size in by_size]
        rate_ax.bar(xs, [by_size[s]["billed_per_s"] for s in sizes if s in by_size], bar, color=COLORS[kind],
                    label=f"billed/s, {label(run)}")  # fmt: skip
        rate_ax.axhline(billing["raw_charges_per_s"], color=COLORS[kind], linestyle="--",
                        label=f"raw SDK charges/s, {label(run)}")  # fmt: skip
        rss_ax.bar(xs, [by_size[s]["peak_rss_mb"] for s in sizes if s in by_size], bar, color=COLORS[kind],
                   label=label(run))  # fmt: skip
    for ax in (rate_ax, rss_ax):
        ax.set_xticks(range(len(sizes)), [f"{s:,}" for s in sizes])
        ax.set_xlabel("subscriptions billed in the run")
        ax.legend(fontsize="small")
        ax.grid(axis="y", alpha=0.3)
    rate_ax.set_ylim(0, rate_ax.get_ylim()[1] * 1.3)  # room for the legend above the raw-rate lines
    rate_ax.set_ylabel("subscriptions billed per second (1/s)")
    rate_ax.set_title("Billing throughput vs raw SDK charges\n(local gateway, no rate limiter)")
    rss_ax.set_ylim(0, rss_ax.get_ylim()[1] * 1.25)  # room for the legend
    rss_ax.set_ylabel("peak worker RSS (MB)")
    rss_ax.set_title("Billing worker's peak memory by size\n(aim: largest <= 1.2x smallest)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _variant_name(r: Results) -> str:
    gateway = f"gateway enforces {r['gateway_limit']}/s" if r["gateway_limit"] else "gateway: no limit"
    return f"our limiter {r['our_limit']}/s\n{gateway}"


def chart_limit(plt: Any, runs: dict[str, Results], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(10, 5.5))
    variants: list[tuple[int, int]] = []
    for run in runs.values():
        for r in run["results"]["limit"]:
            if (r["our_limit"], r["gateway_limit"]) not in variants:
                variants.append((r["our_limit"], r["gateway_limit"]))
    offsets, bar = _bar_offsets(len(runs))
    names, latencies = {}, set()
    for (kind, run), offset in zip(runs.items(), offsets, strict=True):
        by_variant = {(r["our_limit"], r["gateway_limit"]): r for r in run["results"]["limit"]}
        xs, ys = [], []
        for i, variant in enumerate(variants):
            if variant in by_variant:
                r = by_variant[variant]
                xs.append(i + offset)
                ys.append(r["billed_per_s"])
                names[variant] = _variant_name(r)
                latencies.add(r["latency_ms"])
        ax.bar(xs, ys, bar, color=COLORS[kind], label=f"billed/s, {label(run)}")
    for i, (ours, gateway) in enumerate(variants):
        limit = min(ours, gateway or ours)
        ax.hlines(limit, i - 0.45, i + 0.45, colors="black", linewidth=2,
                  label="rate limit" if i == 0 else None)  # fmt: skip
        ax.annotate(f"{limit}/s", (i + 0.45, limit), xytext=(3, 0), textcoords="offset points", va="center")
        aim = 0.8 if gateway else 0.9
        name = "aim (90% of the limit; 80% against a limiting gateway)"
        ax.hlines(aim * limit, i - 0.45, i + 0.45, colors="black", linestyles=":",
                  label=name if i == 0 else None)  # fmt: skip
    ax.set_xticks(range(len(variants)), [names[v] for v in variants])
    ax.set_xlabel("rate-limit variant")
    ax.set_ylabel("subscriptions billed per second (1/s)")
    latency = ", ".join(f"{ms} ms" for ms in sorted(latencies))
    ax.set_title(f"Batch billing at the gateway's rate limit (gateway latency {latency} a call)")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.35)  # room for the legend above the limit lines
    ax.legend(fontsize="small", loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def chart_pipeline(plt: Any, runs: dict[str, Results], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 5))
    offsets, bar = _bar_offsets(2)
    for i, run in enumerate(runs.values()):
        r = run["results"]["pipeline"]
        ax.bar(i + offsets[0], r["pipeline_per_s"], bar, color="tab:green",
               label="pipeline: orders completed/s" if i == 0 else None)  # fmt: skip
        ax.bar(i + offsets[1], r["render_per_s"], bar, color="tab:gray",
               label="raw WeasyPrint renders/s (1 process)" if i == 0 else None)  # fmt: skip
        ax.annotate(f"ratio {r['ratio']:.2f}x (aim >= 0.8)", (i, max(r["pipeline_per_s"], r["render_per_s"])),
                    xytext=(0, 4), textcoords="offset points", ha="center")  # fmt: skip
    ax.set_xticks(range(len(runs)), [label(run) for run in runs.values()])
    ax.set_xlabel("database")
    ax.set_ylabel("per second (1/s)")
    ax.set_title("Order pipeline throughput vs raw PDF renders")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.35)  # room for the ratios and the legend
    ax.legend(fontsize="small", loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _ecdf(ax: Any, samples: list[float], color: str, name: str) -> None:
    ordered = sorted(samples)
    ax.step(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))], where="post", color=color,
            label=name)  # fmt: skip


def chart_checkout(plt: Any, runs: dict[str, Results], path: Path) -> None:
    fig, axes = plt.subplots(1, len(runs), figsize=(max(9.0, 6.5 * len(runs)), 5), squeeze=False)
    for ax, run in zip(axes[0], runs.values(), strict=True):
        r = run["results"]["checkout"]
        samples = r.get("samples_ms")
        for name, color, text in (("checkout", "tab:red", "checkout (insert + enqueue)"),
                                  ("baseline", "tab:gray", "baseline (same inserts)")):  # fmt: skip
            if samples:
                _ecdf(ax, samples[name], color, text)
            ax.axvline(r[name]["median_ms"], color=color, linestyle="--", linewidth=1,
                       label=f"{name} median {r[name]['median_ms']:.1f} ms")  # fmt: skip
            ax.axvline(r[name]["p95_ms"], color=color, linestyle=":", linewidth=1,
                       label=f"{name} p95 {r[name]['p95_ms']:.1f} ms")  # fmt: skip
        if samples:
            everything = sorted(samples["checkout"] + samples["baseline"])
            ax.set_xlim(0, everything[int(len(everything) * 0.99) - 1] * 1.1)  # the slowest 1% off the chart
        ax.set_ylabel("share of requests at or below (ECDF)")
        ax.set_xlabel("request latency (ms)")
        ax.set_title(f"{label(run)}: median {r['ratio_median']:.2f}x, p95 {r['ratio_p95']:.2f}x the baseline")
        ax.legend(fontsize="small", loc="lower right")
        ax.grid(alpha=0.3)
    fig.suptitle("Checkout latency vs its insert-only baseline (aim: <= 1.3x)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def chart_load(plt: Any, runs: dict[str, Results], path: Path) -> None:
    fig, axes = plt.subplots(1, len(runs), figsize=(max(9.0, 6.5 * len(runs)), 5), squeeze=False)
    offsets, bar = _bar_offsets(2)
    for ax, run in zip(axes[0], runs.values(), strict=True):
        loads = run["results"]["load"]
        for r, offset, color in zip(loads, offsets, ("tab:green", "tab:purple"), strict=False):
            state = "down" if r["gateway_down"] else "up"
            values = [r["p50_ms"], r["p95_ms"], r["p99_ms"]]
            ax.bar([i + offset for i in range(3)], values, bar, color=color,
                   label=f"gateway {state}: {r['per_s']:.1f} orders/s, {r['errors']} errors")  # fmt: skip
        ax.set_xticks(range(3), ["p50", "p95", "p99"])
        ax.set_xlabel("checkout latency percentile")
        ax.set_ylabel("checkout latency (ms)")
        first = loads[0]
        ax.set_title(f"{label(run)}: {first['clients']} clients, {first['seconds']:.0f} s each")
        ax.legend(fontsize="small", loc="upper left")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Checkout under load, gateway up vs down the whole run (aim: down within 1.2x of up)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def chart_outage(plt: Any, runs: dict[str, Results], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (kind, run) in enumerate(runs.items()):
        r = run["results"]["outage"]
        ax.bar(i, r["per_order"], 0.5, color=COLORS[kind])
        ax.annotate(f"{r['calls']} calls, {r['orders']} orders", (i, r["per_order"]), xytext=(0, 4),
                    textcoords="offset points", ha="center")  # fmt: skip
    ax.set_xticks(range(len(runs)), [label(run) for run in runs.values()])
    ax.set_xlabel("database")
    ax.set_ylabel("calls reaching the down gateway per order")
    outage = next(iter(runs.values()))["results"]["outage"]["outage_seconds"]
    ax.set_title(f"Calls reaching a down gateway during a {outage:.0f} s outage")
    ax.margins(y=0.2)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


CHARTS = {
    "billing": chart_billing,
    "limit": chart_limit,
    "pipeline": chart_pipeline,
    "checkout": chart_checkout,
    "load": chart_load,
    "outage": chart_outage,
}


def write_charts(runs: dict[str, Results], folder: Path) -> dict[str, str]:
    """A PNG per benchmark that some database measured: {benchmark: file name}."""
    plt = _pyplot()
    written = {}
    for key, draw in CHARTS.items():
        measured = {kind: run for kind, run in runs.items() if key in run["results"]}
        if not measured:
            continue
        path = folder / f"{key}.png"
        try:
            draw(plt, measured, path)
        finally:
            plt.close("all")
        written[key] = path.name
    return written


def write_report(folder: Path = BENCH_DIR) -> list[Path]:
    """report.md, readme-figures.md and the charts, from the results saved in `folder`; their paths."""
    info, runs = load(folder)
    charts = write_charts(runs, folder)
    (folder / "report.md").write_text(report_markdown(info, runs, charts))
    (folder / "readme-figures.md").write_text(readme_figures(info, runs))
    return [folder / "report.md", folder / "readme-figures.md", *(folder / name for name in charts.values())]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dir", type=Path, default=BENCH_DIR, help="where the results are (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    if not any(args.dir.glob("results-*.json")):
        print(f"no results-*.json in {args.dir}: run python -m benchmarks first", file=sys.stderr)
        return 1
    for path in write_report(args.dir):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
