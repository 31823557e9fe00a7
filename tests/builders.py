"""Builders for hand-worked scenarios: registrations, events, and readers of the evaluate document.

Every timestamp is written out in full (with its offset) in the tests themselves, so the expected
values can be checked against OBLIGATIONS.md and the README (How the rules are read) by reading the test.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from monitor.batch.evaluate import evaluate_records

VIN = "LGXCE4CB5N0012345"  # WMI "LGX": the brand of the default registration
FOREIGN_VIN = "WVWZZZ1JZXW000001"  # WMI "WVW": a brand no test exporter is authorised for
EXPORTER = "EXP-1"
LICENCE = "LIC-2026-001"


def registration(exporter_id: str = EXPORTER, *, role: str = "automaker", category: str = "II",
                 major: tuple[str, ...] = ("KE",), wmi: tuple[str, ...] = ("LGX",),
                 parts: dict[str, list[str]] | None = None, licence: dict[str, str] | None = None,
                 authorised_by: tuple[str, ...] = ()) -> dict[str, Any]:
    """An exporter with a valid 2026 licence, brand WMI LGX, major market KE, catalogue P1..P10."""
    return {
        "exporter_id": exporter_id, "name": f"{exporter_id} Motors", "role": role, "category": category,
        "authorised_by": list(authorised_by),
        "brands": [{"name": f"{exporter_id}-brand", "wmi": list(wmi)}] if wmi else [],
        "licence": licence or {"number": LICENCE, "valid_from": "2026-01-01", "valid_to": "2026-12-31"},
        "major_markets": list(major),
        "common_parts": parts if parts is not None else {"*": [f"P{i}" for i in range(1, 11)]},
    }


def ticket(event_id: str, kind: str, at: str, *, ticket_id: str = "T-1", exporter: str = EXPORTER,
           market: str = "KE", vin: str = VIN) -> dict[str, Any]:
    return {"topic": "service-tickets", "event_id": event_id, "type": kind, "ticket_id": ticket_id,
            "exporter_id": exporter, "market": market, "vin": vin, "occurred_at": at}


def stock(event_id: str, depot: str, at: str, lines: dict[str, int], *, exporter: str = EXPORTER,
          market: str = "KE") -> dict[str, Any]:
    return {"topic": "parts-stock", "event_id": event_id, "exporter_id": exporter, "market": market,
            "depot_id": depot,
            "lines": [{"part_number": part, "quantity_on_hand": qty} for part, qty in lines.items()],
            "occurred_at": at}


def outlet(event_id: str, outlet_id: str, at: str, *, status: str = "operational", rescue: bool = True,
           exporter: str = EXPORTER, market: str = "KE") -> dict[str, Any]:
    capabilities = ["maintenance", "emergency_rescue_24h"] if rescue else ["maintenance"]
    return {"topic": "outlet-status", "event_id": event_id, "exporter_id": exporter, "outlet_id": outlet_id,
            "market": market, "status": status, "capabilities": capabilities, "occurred_at": at}


def utc(text: str) -> datetime:
    """An aware datetime from an RFC 3339 string (a trailing Z allowed)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert moment.tzinfo is not None, f"test wrote a naive timestamp: {text}"
    return moment.astimezone(UTC)


def evaluate(records: list[Any], *, registry: list[dict[str, Any]] | None = None, as_of: str | None = None,
             **options: Any) -> dict[str, Any]:
    """evaluate_records with the default registration unless another registry is given."""
    return evaluate_records(records, registry=[registration()] if registry is None else registry,
                            as_of=utc(as_of) if as_of else None, **options)


def figure(doc: dict[str, Any], market: str = "KE", exporter: str = EXPORTER) -> dict[str, Any]:
    matches = [f for f in doc["figures"] if f["exporter_id"] == exporter and f["market"] == market]
    assert len(matches) == 1, f"expected one figure for {exporter}/{market}, got {matches}"
    return matches[0]


def network(doc: dict[str, Any], exporter: str = EXPORTER) -> dict[str, Any]:
    matches = [e["network_size"] for e in doc["exporters"] if e["exporter_id"] == exporter]
    assert len(matches) == 1, f"expected one network_size entry for {exporter}, got {doc['exporters']}"
    return matches[0]


def counts(doc: dict[str, Any], market: str = "KE", exporter: str = EXPORTER) -> dict[str, int]:
    r = figure(doc, market, exporter)["response_48h"]
    return {k: r[k] for k in ("compliant", "breached", "withdrawn", "pending")}


def alerts_of(doc: dict[str, Any], obligation: str, exporter: str | None = EXPORTER) -> list[dict[str, Any]]:
    return [a for a in doc["alerts"]
            if a["obligation"] == obligation and (exporter is None or a["exporter_id"] == exporter)]


def alert_facts(doc: dict[str, Any], obligation: str, exporter: str | None = EXPORTER) -> list[tuple[Any, ...]]:
    """(severity, status, subject, market, opened_at, resolved_at) of one obligation's alerts, sorted."""
    facts = [(a["severity"], a["status"], a["subject"], a["market"], a["opened_at"], a["resolved_at"])
             for a in alerts_of(doc, obligation, exporter)]
    return sorted(facts, key=lambda f: (f[4], f[0], f[2]))
