"""Regenerate the bundled example network in monitor/examples/: the same files on every run.

    PYTHONPATH=. python bench/make_example.py [--check]     (or with the package installed)

registry.yaml  four exporters: three automakers (Category I and II) and a distributor
policy.yaml    the default policy written out, every parameter with value, status, source
events.jsonl   two weeks of the network's events, with a few lines that must be rejected

`--check` regenerates in memory and fails when the bundled files differ.
"""

from __future__ import annotations

import argparse
import copy
import sys
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import yaml

from monitor.contracts.policy import DEFAULT_POLICY
from monitor.simulation.network import NetworkSpec, ResponseMix, events, registrations

EXAMPLES = Path(__file__).resolve().parent.parent / "monitor" / "examples"

# Small enough to read, busy enough that every obligation raises an alert somewhere. With
# 3 markets x 17 outlets, a Category I exporter has exactly the 51 outlets it needs, so one
# silent or suspended outlet breaches network size.
SPEC = NetworkSpec(
    seed=7,
    exporters=4,
    markets_per_exporter=3,
    outlets_per_market=17,
    depots_per_market=1,
    catalogue_size=12,
    tickets_per_day_per_market=4,
    start=date(2026, 3, 1),
    days=14,
    response_mix=ResponseMix(on_time=0.9, late=0.07, never=0.03),
    grey_market_share=0.01,
    heartbeat_minutes=16 * 60,
    stock_report_hours=12,
    outage_share=0.006,
    suspension_share=0.006,
    closure_share=0.001,
    stockout_share=0.04,
)


def _policy_document() -> list[dict[str, Any]]:
    """Every version of the default policy with all its parameters spelt out."""
    return [
        {"version": version.version, "effective_from": version.effective_from.isoformat(),
         "parameters": {name: parameter.model_dump(mode="json")
                        for name, parameter in version.resolved().items()}}
        for version in DEFAULT_POLICY.root
    ]


def _bad_lines(stream: list[dict[str, Any]]) -> list[tuple[int, bytes]]:
    """Lines that must be rejected, each a real event spoilt in one way, with where it goes."""
    tickets = [i for i, e in enumerate(stream) if e["topic"] == "service-tickets" and e["type"] == "opened"]
    reports = [i for i, e in enumerate(stream) if e["topic"] == "parts-stock"]
    beats = [i for i, e in enumerate(stream) if e["topic"] == "outlet-status"]
    bad = []

    naive = copy.deepcopy(stream[tickets[len(tickets) // 5]])
    naive["event_id"] += "-r"
    naive["occurred_at"] = naive["occurred_at"][:19]  # the offset lost: a naive timestamp
    bad.append((tickets[len(tickets) // 5] + 1, orjson.dumps(naive)))

    letter_o = copy.deepcopy(stream[tickets[len(tickets) * 2 // 5]])
    letter_o["event_id"] += "-r"
    letter_o["vin"] = letter_o["vin"][:4] + "O" + letter_o["vin"][5:]  # ISO 3779 has no O
    bad.append((tickets[len(tickets) * 2 // 5] + 1, orjson.dumps(letter_o)))

    negative = copy.deepcopy(stream[reports[len(reports) * 3 // 5]])
    negative["event_id"] += "-r"
    negative["lines"][0]["quantity_on_hand"] = -2
    bad.append((reports[len(reports) * 3 // 5] + 1, orjson.dumps(negative)))

    cut = orjson.dumps(stream[beats[len(beats) * 4 // 5]])
    bad.append((beats[len(beats) * 4 // 5] + 1, cut[: len(cut) // 2]))  # a line cut off: not JSON
    return bad


def build() -> dict[str, bytes]:
    """The example files' contents by name."""
    registry = yaml.safe_dump(registrations(SPEC), sort_keys=False, allow_unicode=True, width=100)
    policy = yaml.safe_dump(_policy_document(), sort_keys=False, allow_unicode=True, width=100)
    stream = list(events(SPEC))
    lines = [orjson.dumps(event) for event in stream]
    for position, line in sorted(_bad_lines(stream), reverse=True):
        lines.insert(position, line)
    return {
        "registry.yaml": f"# Example exporter registry: made by bench/make_example.py\n{registry}".encode(),
        "policy.yaml": ("# The default policy written out: every parameter with its value, status and "
                        f"source\n{policy}").encode(),
        "events.jsonl": b"\n".join(lines) + b"\n",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail when the bundled files differ")
    options = parser.parse_args()
    files = build()
    if options.check:
        stale = [name for name, content in files.items()
                 if not (EXAMPLES / name).exists() or (EXAMPLES / name).read_bytes() != content]
        if stale:
            print(f"out of date in {EXAMPLES}: {', '.join(stale)} (run bench/make_example.py)",
                  file=sys.stderr)
            return 1
        print("the bundled examples are up to date")
        return 0
    EXAMPLES.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (EXAMPLES / name).write_bytes(content)
    count = files["events.jsonl"].count(b"\n")
    print(f"wrote {EXAMPLES}/: registry.yaml, policy.yaml, events.jsonl ({count:,} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
