"""`evaluate --format table`: the evaluation for a person at a terminal."""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

_MARK = {True: "[green]met[/]", False: "[red]BREACH[/]", None: "[dim]n/a[/]"}


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _hours(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}h"


def render(doc: dict[str, Any], console: Console) -> None:
    """Figures per exporter and market, network size, alerts, rejected lines, data quality."""
    if doc["as_of"] is None:
        console.print("[bold]No events in the input[/]: registered exporters are listed with nothing reported")
    else:
        console.print(f"[bold]As of[/] {doc['as_of']}   policy {', '.join(doc['policy_versions'])}")
    for policy in doc["policies"]:
        statuses = Counter(p["status"] for p in policy["parameters"].values())
        thresholds = ", ".join(f"{name} {p['value']} [{p['status']}]" for name, p in policy["parameters"].items())
        console.print(f"policy {policy['version']} from {policy['effective_from']} "
                      f"({', '.join(f'{n} {s}' for s, n in sorted(statuses.items()))}; sources in --format json): "
                      f"{thresholds}", style="dim", markup=False, highlight=False)

    figures = Table(title="Compliance by exporter and market", header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False,
                    caption="* major export market · cycles: compliant/breached/pending/withdrawn · "
                            "rescue: rescue-capable/active outlets")
    for column in ("exporter", "mkt", "48h ratio", "cycles", "p95", "parts", "rescue", "coverage"):
        figures.add_column(column, no_wrap=True, justify="left" if column in ("exporter", "mkt") else "right")
    for row in doc["figures"]:
        r, p, c = row["response_48h"], row["parts_inventory"], row["emergency_coverage"]
        coverage = _MARK[c["covered"]] if c["major_market"] else ("covered" if c["covered"] else "[dim]—[/]")
        parts = "[dim]n/a[/]" if p["rate"] is None else f"{p['rate']:.0%} {_MARK[p['compliant']]}"
        figures.add_row(
            row["exporter_id"], row["market"] + ("*" if c["major_market"] else ""), _pct(r["ratio"]),
            f"{r['compliant']}/{r['breached']}/{r['pending']}/{r['withdrawn']}", _hours(r["p95_hours"]),
            parts, f"{c['rescue_outlets']}/{c['active_outlets']}", coverage)
    console.print(figures)

    network = Table(title="Network size", header_style="bold")
    for column in ("exporter", "active outlets", "required", "verdict"):
        network.add_column(column)
    for row in doc["exporters"]:
        n = row["network_size"]
        network.add_row(row["exporter_id"], str(n["active_outlets"]),
                        "—" if n["required"] is None else str(n["required"]), _MARK[n["compliant"]])
    console.print(network)

    tally = Counter((a["obligation"], a["severity"], a["status"]) for a in doc["alerts"])
    alerts = Table(title=f"Alerts ({len(doc['alerts'])})", header_style="bold")
    for column in ("obligation", "severity", "open", "resolved"):
        alerts.add_column(column)
    for obligation, severity in sorted({(o, s) for o, s, _ in tally}):
        alerts.add_row(obligation, severity, str(tally[(obligation, severity, "open")]),
                       str(tally[(obligation, severity, "resolved")]))
    console.print(alerts)

    open_breaches = [a for a in doc["alerts"] if a["status"] == "open" and a["severity"] == "breach"]
    if open_breaches:
        shown = "" if len(open_breaches) <= 15 else f", latest 15 of {len(open_breaches)}"
        latest = Table(title=f"Open breaches ({len(open_breaches)}{shown})", header_style="bold")
        for column in ("opened at", "exporter", "market", "obligation", "subject"):
            latest.add_column(column)
        for a in open_breaches[-15:]:
            opened = a["opened_at"][:16].replace("T", " ") + "Z"  # to the minute: fits a terminal
            latest.add_row(opened, a["exporter_id"], a["market"] or "—", a["obligation"], a["subject"])
        console.print(latest)

    if doc["rejected"]:
        console.print(f"[yellow]{len(doc['rejected'])} rejected line(s)[/], first ones:")
        for entry in doc["rejected"][:10]:
            console.print(f"  {entry['source']}: {entry['reason']}", highlight=False, markup=False)
    if doc["data_quality"]:
        kinds = Counter(issue["kind"] for issue in doc["data_quality"])
        console.print("[yellow]data quality:[/] " + ", ".join(f"{k} ×{n}" for k, n in sorted(kinds.items())))
