"""Daily figures from compliance snapshots: which obligation parts a snapshot holds, and whether met.

A ComplianceSnapshot carries one exporter's figures in one market plus its exporter-wide
network size; each becomes a row of `daily_figures` per UTC day. Kept free of the database
so the rules can be read (and tested) on their own.
"""

from __future__ import annotations

from typing import Any, NamedTuple

EXPORTER_WIDE = "*"  # the market of exporter-wide figures (network_size)


class Part(NamedTuple):
    market: str
    obligation: str
    figure: dict[str, Any]
    met: bool | None


def parts_of(snapshot: dict[str, Any]) -> list[Part]:
    """The obligation figures of one snapshot, each with whether it was met at that instant.

    - `response_48h`: met is null: the response obligation is judged over a period from its
      counts (compliant / (compliant + breached)), never at an instant.
    - `parts_inventory`: the figure's `compliant` (null when the rate is undefined).
    - `emergency_coverage`: `covered` in a major market; null elsewhere, where coverage is
      not required.
    - `network_size` (market "*"): the figure's `compliant` (null when no minimum applies).
    """
    market = snapshot["market"]
    coverage = snapshot["emergency_coverage"]
    return [
        Part(market, "response_48h", snapshot["response_48h"], None),
        Part(market, "parts_inventory", snapshot["parts_inventory"], snapshot["parts_inventory"].get("compliant")),
        Part(market, "emergency_coverage", coverage, coverage.get("covered") if coverage.get("major_market") else None),
        Part(EXPORTER_WIDE, "network_size", snapshot["network_size"], snapshot["network_size"].get("compliant")),
    ]


def held_throughout(a: bool | None, b: bool | None) -> bool | None:
    """Whether an obligation held over two stretches of a day: false if either was not met,
    else null if either is unknown, else true."""
    if a is False or b is False:
        return False
    if a is None or b is None:
        return None
    return True
