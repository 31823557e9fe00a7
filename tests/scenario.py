"""Small builders for hand-written scenarios: one exporter, events by keyword."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from monitor.batch.evaluate import evaluate_records

VIN = "LGXCE4CB5N0012345"  # manufacturer code LGX


def registration(exporter_id: str = "EXP-1", *, category: str = "II", major: tuple[str, ...] = ("KE",),
                 parts: int = 10, **extra: Any) -> dict[str, Any]:
    return {
        "exporter_id": exporter_id, "role": "automaker", "category": category,
        "brands": [{"name": "Volta", "wmi": ["LGX"]}],
        "licence": {"number": "LIC-1", "valid_from": "2026-01-01", "valid_to": "2026-12-31"},
        "major_markets": list(major), "common_parts": {"*": [f"P{i}" for i in range(1, parts + 1)]},
        **extra,
    }


def ticket(event_id: str, kind: str, at: str, *, ticket_id: str = "T-1", exporter: str = "EXP-1",
           market: str = "KE", vin: str = VIN) -> dict[str, Any]:
    return {"topic": "service-tickets", "event_id": event_id, "type": kind, "ticket_id": ticket_id,
            "exporter_id": exporter, "market": market, "vin": vin, "occurred_at": at}


def stock(event_id: str, depot: str, at: str, *lines: tuple[str, int], exporter: str = "EXP-1",
          market: str = "KE") -> dict[str, Any]:
    return {"topic": "parts-stock", "event_id": event_id, "exporter_id": exporter, "market": market,
            "depot_id": depot, "lines": [{"part_number": p, "quantity_on_hand": q} for p, q in lines],
            "occurred_at": at}


def outlet(event_id: str, outlet_id: str, at: str, *, status: str = "operational", rescue: bool = True,
           exporter: str = "EXP-1", market: str = "KE") -> dict[str, Any]:
    capabilities = ["maintenance", "emergency_rescue_24h"] if rescue else ["maintenance"]
    return {"topic": "outlet-status", "event_id": event_id, "exporter_id": exporter, "outlet_id": outlet_id,
            "market": market, "status": status, "capabilities": capabilities, "occurred_at": at}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def evaluate(events: list[dict[str, Any]], *, registry: list[dict[str, Any]] | None = None,
             as_of: str | None = None, **options: Any) -> dict[str, Any]:
    return evaluate_records(events, registry=[registration()] if registry is None else registry,
                            as_of=utc(as_of) if as_of else None, **options)


def figure(doc: dict[str, Any], market: str = "KE", exporter: str = "EXP-1") -> dict[str, Any]:
    return next(f for f in doc["figures"] if f["exporter_id"] == exporter and f["market"] == market)


def alerts(doc: dict[str, Any], obligation: str) -> list[tuple[Any, ...]]:
    """(severity, subject, status, opened_at, resolved_at) of one obligation's alerts, in order."""
    return [(a["severity"], a["subject"], a["status"], a["opened_at"], a["resolved_at"])
            for a in doc["alerts"] if a["obligation"] == obligation]
