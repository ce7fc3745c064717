"""The campaign's report: one table row per invariant, what is still in flight if the shop did not settle,
what the campaign itself saw (crash points reached, processes that exited on their own, faults it failed
to inject), and the figures line."""

from __future__ import annotations

from chaos.campaign import Outcome
from chaos.invariants import Row
from chaos.schedule import Sizes

SHOWN = 10  # violations listed per invariant (the count says how many there are)
SHOWN_IN_FLIGHT = 10  # ids listed per kind of unsettled work


def render(seed: int, sizes: Sizes, outcome: Outcome) -> str:
    return "\n".join([table(outcome.rows), *notes(outcome), figures(seed, sizes, outcome)])


def notes(outcome: Outcome) -> list[str]:
    """The lines between the table and the figures: what is in flight, and what the campaign saw."""
    parts = [in_flight(outcome.unsettled)] if outcome.unsettled else []
    fired = ", ".join(f"{point} in {worker}" for point, worker in outcome.fired.items()) or "none"
    parts.append(f"crash points fired: {fired}")
    # Restarted by the campaign's supervisor, as `make demo` restarts a child that exits.
    for exit_ in outcome.exits:
        if exit_.cause == "exited":
            parts.append(f"exited on its own (restarted): {exit_.name}: {exit_.last_words}")
    parts += [f"campaign error: {error}" for error in outcome.errors]
    return parts


def table(rows: list[Row]) -> str:
    width = max(len(row.invariant) for row in rows)
    lines = [f"{'invariant':{width}}  {'checked':>7}  held  violations"]
    for row in rows:
        held = "yes" if row.held else "NO"
        first = row.note if row.held else row.violations[0]
        count = len(row.violations)
        lines.append(f"{row.invariant:{width}}  {row.checked:>7}  {held:4}  {count:>3}  {first}")
        indent = " " * (width + 21)
        lines += [f"{indent}{violation}" for violation in row.violations[1:SHOWN]]
        if len(row.violations) > SHOWN:
            lines.append(f"{indent}... and {len(row.violations) - SHOWN} more")
        if not row.held and row.note:
            lines.append(f"{indent}({row.note})")
    return "\n".join(lines)


def in_flight(unsettled: dict[str, list[str]]) -> str:
    lines = ["still in flight:"]
    for kind, items in unsettled.items():
        if items:
            lines.append(f"  {kind} ({len(items)}): " + "; ".join(items[:SHOWN_IN_FLIGHT]))
    return "\n".join(lines)


def figures(seed: int, sizes: Sizes, outcome: Outcome) -> str:
    after = outcome.settled_after
    settled = "NOT settled" if after is None else f"settled in {after:.0f} s"
    return (
        f"figures: seed {seed} ({sizes.orders} orders, {sizes.signups} sign-ups, {sizes.subscriptions} "
        f"subscriptions billed, {sizes.kills} kills): {outcome.requests} requests "
        f"({outcome.failed_requests} failed), {outcome.faults} faults injected, {settled}, "
        f"{outcome.violations} violations"
    )
