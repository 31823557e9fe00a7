"""A breach's evidence in one line, for tables (the CSV rows and the HTML page)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

_MAX_LISTED = 8


def summarise(obligation: str, evidence: Mapping[str, Any]) -> str:
    """One line of plain text saying what the evidence of an alert of `obligation` shows.

    Never fails: evidence of an unexpected shape is given as compact JSON.
    """
    try:
        line = _LINES[obligation](evidence) if obligation in _LINES else ""
    except (KeyError, TypeError, ValueError, AttributeError):
        line = ""
    return line or json.dumps(dict(evidence), sort_keys=True, separators=(",", ":"), default=str)


def _listed(items: list[Any]) -> str:
    shown = ", ".join(str(i) for i in items[:_MAX_LISTED])
    return shown + (f" (+{len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else "")


def _response(e: Mapping[str, Any]) -> str:
    start = e.get("start") or {}
    parts = [f"ticket {e['ticket_id']} cycle {e.get('cycle', '?')}: {start.get('type', 'opened')} "
             f"{start.get('occurred_at', '?')}, deadline {e.get('deadline', '?')}"]
    answer = e.get("answer")
    if answer:
        hours = e.get("response_hours")
        took = f" ({hours:.1f} h)" if isinstance(hours, int | float) else ""
        parts.append(f"{answer.get('type', 'answered')} {answer.get('occurred_at', '?')}{took}")
    else:
        parts.append("no answer")
    if e.get("cancellation"):
        parts.append(f"cancelled {e['cancellation'].get('occurred_at', '?')}")
    return "; ".join(parts)


def _parts(e: Mapping[str, Any]) -> str:
    rate = e.get("rate")
    shown = f"{rate:.2f}" if isinstance(rate, int | float) else "undefined"
    line = (f"rate {shown}: {e.get('stocked')} of {e.get('catalogue')} catalogue parts stocked "
            f"(minimum {e.get('min_rate')})")
    missing = list(e.get("missing_parts") or [])
    return line + (f"; missing {_listed(missing)}" if missing else "")


def _coverage(e: Mapping[str, Any]) -> str:
    return f"{e['active_outlets']} active outlet(s), {e['rescue_outlets']} with 24-hour emergency rescue"


def _network(e: Mapping[str, Any]) -> str:
    return (f"{e['active_outlets']} active outlet(s), {e.get('required')} required "
            f"(category {e.get('category', '?')})")


def _authorisation(e: Mapping[str, Any]) -> str:
    details = [str(e["reason"])]
    if "vin" in e:
        details.append(f"ticket {e.get('ticket_id')}, VIN {e['vin']}")
    first = e.get("first_event") or {}
    if first:
        details.append(f"first event {first.get('event_id')} at {first.get('occurred_at')}")
    return "; ".join(details)


_LINES = {
    "response_48h": _response,
    "parts_inventory": _parts,
    "emergency_coverage": _coverage,
    "network_size": _network,
    "authorisation": _authorisation,
}
