"""Alert, snapshot and registration documents as the worker publishes them, and the store's rows read back,
for the history tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

EXPORTER = "EXP-1"
TABLES = {"alert_transitions", "alert_repeats", "chain_heads", "alerts", "compliance_latest", "daily_figures",
          "policy_versions", "registrations", "webhooks", "webhook_deliveries"}


def alert(number: int = 1, *, exporter: str = EXPORTER, status: str = "open", market: str | None = "KE",
          obligation: str = "response_48h", severity: str = "breach", opened_at: str = "2026-03-03T10:00:00Z",
          resolved_at: str | None = None, raised_at: str | None = "2026-03-03T10:00:01Z",
          evidence: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ComplianceAlert message: alert `A<number>` of `exporter`."""
    return {"alert_id": f"{exporter}/A{number}", "exporter_id": exporter, "market": market,
            "obligation": obligation, "severity": severity, "status": status, "subject": f"T-{number}#1",
            "opened_at": opened_at, "resolved_at": resolved_at, "raised_at": raised_at, "renewal_relevant": True,
            "policy_version": "2026.1", "accountable": [exporter],
            "evidence": evidence if evidence is not None else {"ticket_id": f"T-{number}", "ratio": 0.1}}


def snapshot(as_of: str, *, exporter: str = EXPORTER, market: str = "KE", parts_compliant: bool | None = True,
             covered: bool = True, major: bool = True, network_compliant: bool | None = False,
             compliant: int = 3, breached: int = 1) -> dict[str, Any]:
    """A ComplianceSnapshot message of `exporter` in `market` as of `as_of`."""
    total = compliant + breached
    return {
        "exporter_id": exporter, "market": market, "as_of": as_of, "policy_version": "2026.1",
        "response_48h": {"compliant": compliant, "breached": breached, "withdrawn": 0, "pending": 0,
                         "ratio": compliant / total if total else None, "p50_hours": 20.0, "p95_hours": 47.5},
        "parts_inventory": {"catalogue": 10, "stocked": 3 if parts_compliant else 1,
                            "rate": 0.3 if parts_compliant else 0.1, "compliant": parts_compliant},
        "emergency_coverage": {"active_outlets": 2, "rescue_outlets": 1 if covered else 0, "covered": covered,
                               "major_market": major},
        "network_size": {"active_outlets": 12, "required": 51, "compliant": network_compliant},
    }


def registration(exporter: str = EXPORTER, *, name: str | None = None, role: str = "automaker",
                 authorised_by: tuple[str, ...] = ()) -> dict[str, Any]:
    """An ExporterRegistration message."""
    return {"exporter_id": exporter, "name": name or f"{exporter} Motors", "role": role, "category": "I",
            "authorised_by": list(authorised_by), "brands": [{"name": "B", "wmi": ["LGX"]}],
            "licence": {"number": f"LIC-{exporter}", "valid_from": "2026-01-01", "valid_to": "2026-12-31"},
            "major_markets": ["KE"], "common_parts": {"*": ["P1", "P2"]}}


async def dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in key order, as plain tuples."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            tables = {}
            for table in sorted(TABLES):
                rows = await connection.execute(text(f"SELECT * FROM {table}"))  # noqa: S608 - fixed names
                tables[table] = sorted(tuple(str(v) for v in row) for row in rows)
            return tables
    finally:
        await engine.dispose()
