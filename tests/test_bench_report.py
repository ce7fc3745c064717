"""benchmarks/report.py: the aims table judges each database's figures, and every chart is a PNG."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def limit_variant(ours: int, gateway: int, billed_per_s: float, **extra: int) -> dict[str, object]:
    limit = min(ours, gateway or ours)
    return {
        "size": 200, "our_limit": ours, "gateway_limit": gateway, "latency_ms": 300,
        "billed_per_s": billed_per_s, "of_limit": billed_per_s / limit, "seconds": 200 / billed_per_s,
        "refused_429": 3 if gateway else 0, "charged_invoices": 200, "doubled_invoices": 0, **extra,
    }  # fmt: skip


def results(
    *, billed: float, limit_100: float, doubled: int, p95_ratio: float, load_errors: int
) -> dict[str, object]:
    return {
        "checkout": {
            "checkout": {"median_ms": 6.0, "p95_ms": 10.0 * p95_ratio, "count": 4},
            "baseline": {"median_ms": 5.0, "p95_ms": 10.0, "count": 4},
            "ratio_median": 1.2,
            "ratio_p95": p95_ratio,
            "samples_ms": {"checkout": [5.5, 6.0, 6.5, 12.0], "baseline": [4.5, 5.0, 5.5, 10.0]},
            "worker_paused": {
                "checkout": {"median_ms": 5.25, "p95_ms": 9.0, "count": 4},
                "baseline": {"median_ms": 5.0, "p95_ms": 8.0, "count": 4},
                "ratio_median": 1.05,
                "ratio_p95": 1.125,
            },
        },
        "pipeline": {
            "orders": 10,
            "pipeline_per_s": 4.5,
            "render_per_s": 5.0,
            "render_runs": [4.8, 5.2],
            "ratio": 0.9,
        },
        "outage": {"orders": 12, "outage_seconds": 45, "calls": 9, "per_order": 0.75},
        "load": [
            {
                "clients": 5,
                "seconds": 5,
                "gateway_down": False,
                "orders": 500,
                "per_s": 100.0,
                "p50_ms": 40.0,
                "p95_ms": 80.0,
                "p99_ms": 120.0,
                "errors": load_errors,
                "first_errors": [],
                "all_completed_after_s": 20.0,
            },
            {
                "clients": 5,
                "seconds": 5,
                "gateway_down": True,
                "orders": 480,
                "per_s": 96.0,
                "p50_ms": 44.0,
                "p95_ms": 85.0,
                "p99_ms": 130.0,
                "errors": 0,
                "first_errors": [],
                "all_completed_after_s": 60.0,
            },
        ],
        "billing": {
            "sizes": [
                {
                    "size": 500,
                    "billed_per_s": billed,
                    "seconds": 500 / billed,
                    "peak_rss_mb": 100.0,
                    "raw_charges_per_s": 200.0,
                },
                {
                    "size": 1000,
                    "billed_per_s": billed * 1.1,
                    "seconds": 1000 / billed,
                    "peak_rss_mb": 110.0,
                    "raw_charges_per_s": 230.0,
                },
            ],
            "raw_charges_per_s": 210.0,
            "raw_charge_runs": [190.0, 210.0, 250.0],
            "calls_in_flight": 16,
        },
        "limit": [
            limit_variant(25, 0, 23.0),
            limit_variant(100, 0, limit_100),
            limit_variant(30, 25, 21.0, doubled_invoices=doubled),
        ],
    }


def save(folder: Path, kind: str, label: str, measured: dict[str, object]) -> None:
    record = {
        "database": {"kind": kind, "label": label},
        "started": "2030-01-01T12:00:00+00:00",
        "options": {"requests": 4},
        "results": measured,
    }
    (folder / f"results-{kind}.json").write_text(json.dumps(record))


def aim_row(text: str, figure_start: str) -> list[str]:
    row = next(line for line in text.splitlines() if line.startswith(f"| {figure_start}"))
    return [cell.strip() for cell in row.strip("|").split("|")]


def mark(cell: str) -> str:
    return next(m for m in (report.PASS, report.FAIL, report.NOT_JUDGED) if cell.endswith(m))


def test_report_judges_each_database_and_draws_every_chart(tmp_path: Path) -> None:
    # SQLite: every aim met but the 100/s one, judged only on PostgreSQL. PostgreSQL: billing at 0.5x the
    # raw rate, an invoice charged twice, checkout's p95 at 1.5x the baseline, load errors.
    save(tmp_path, "sqlite", "SQLite 3.40", results(billed=160, limit_100=50, doubled=0, p95_ratio=1.1,
                                                    load_errors=0))  # fmt: skip
    save(tmp_path, "postgresql", "PostgreSQL 16.2", results(billed=100, limit_100=95, doubled=1,
                                                            p95_ratio=1.5, load_errors=2))  # fmt: skip
    report.save_run_info(tmp_path, "python -m benchmarks --requests 4", ["sqlite", "postgresql"])

    written = report.write_report(tmp_path)

    text = (tmp_path / "report.md").read_text()
    assert "| figure | aim | SQLite 3.40 | PostgreSQL 16.2 |" in text
    expected = {  # figure: (SQLite's mark, PostgreSQL's mark)
        "billing, local gateway": (report.PASS, report.FAIL),
        "billing, gateway latency 300 ms, rate limit 25/s": (report.PASS, report.PASS),
        "billing, gateway latency 300 ms, rate limit 100/s": (report.NOT_JUDGED, report.PASS),
        "billing, gateway enforcing 25/s": (report.PASS, report.FAIL),
        "billing peak worker RSS": (report.PASS, report.PASS),
        "pipeline completed orders/s": (report.PASS, report.PASS),
        "checkout median and p95": (report.PASS, report.FAIL),
        "load: errors": (report.PASS, report.FAIL),
        "load, gateway down": (report.PASS, report.PASS),
    }
    for figure, marks in expected.items():
        cells = aim_row(text, figure)
        assert len(cells) == 4, cells
        assert tuple(mark(cell) for cell in cells[2:]) == marks, (figure, cells)
    # each size against the raw rate around it: 1,000 billed 176/s against 230/s is the worst
    assert "0.77 (worst size, 1,000)" in aim_row(text, "billing, local gateway")[2]
    assert "lost 0, doubled 1" in aim_row(text, "billing, gateway enforcing 25/s")[3]
    assert "; aim is for PostgreSQL" in aim_row(text, "billing, gateway latency 300 ms, rate limit 100/s")[2]
    assert "python -m benchmarks --requests 4" in text
    for section in ("## Checkout latency", "## Batch billing at the rate limit", "### PostgreSQL 16.2"):
        assert section in text
    assert "| worker paused: checkout / baseline | 1.05x | 1.12x |  |" in text  # the enqueue's own cost

    snippet = (tmp_path / "readme-figures.md").read_text()
    assert "python -m benchmarks --requests 4" in snippet
    assert "| figure | aim | SQLite 3.40 | PostgreSQL 16.2 |" in snippet

    charts = {p.name for p in written if p.suffix == ".png"}
    assert charts == {"billing.png", "limit.png", "pipeline.png", "checkout.png", "load.png", "outage.png"}
    for name in charts:
        data = (tmp_path / name).read_bytes()
        assert data.startswith(PNG_MAGIC), name
        assert len(data) > 10_000, name  # a drawn chart, not an empty canvas
        assert f"({name})" in text  # linked from its section


def test_report_runs_from_saved_results_alone(tmp_path: Path) -> None:
    """`python -m benchmarks.report` redoes the report from results-*.json, run.json or not."""
    measured = results(billed=1, limit_100=1, doubled=0, p95_ratio=1, load_errors=0)
    save(tmp_path, "sqlite", "SQLite 3.40", {"pipeline": measured["pipeline"]})
    assert report.main(["--dir", str(tmp_path)]) == 0
    text = (tmp_path / "report.md").read_text()
    assert (
        "| pipeline completed orders/s vs raw WeasyPrint renders/s, same processes | >= 0.8 | 0.90 ✓ |"
        in text
    )
    assert "| checkout median and p95 vs insert-only baseline | <= 1.3x | not run (not judged) |" in text
    assert [p.name for p in tmp_path.glob("*.png")] == ["pipeline.png"]
    assert report.main(["--dir", str(tmp_path / "empty")]) == 1
