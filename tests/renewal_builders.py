"""Hand-built inputs of the renewal assessment: alerts with their stored transitions, daily-figure rows.

Every timestamp is written out in the tests, so each expected figure can be checked by reading them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from monitor.contracts.policy import DEFAULT_POLICY
from monitor.obligations.policy import PolicyBook
from monitor.renewal.assessment import RenewalAssessment, assess
from tests.builders import EXPORTER, utc

BOOK = PolicyBook(DEFAULT_POLICY)
FIGURES = {
    "response_48h": {"compliant": 0, "breached": 0, "withdrawn": 0, "pending": 0, "ratio": None,
                     "p50_hours": None, "p95_hours": None},
    "parts_inventory": {"catalogue": 10, "stocked": 3, "rate": 0.3, "compliant": True},
    "emergency_coverage": {"active_outlets": 2, "rescue_outlets": 1, "covered": True, "major_market": True},
    "network_size": {"active_outlets": 51, "required": 51, "compliant": True},
}


def row(obligation: str, day: str, *, market: str = "KE", met: bool | None = True, met_all_day: bool | None = None,
        first: str | None = None, last: str | None = None, exporter: str = EXPORTER,
        **figure: Any) -> dict[str, Any]:
    """A daily_figures row; the figure is the obligation's default with `figure` changes applied."""
    return {
        "exporter_id": exporter, "market": "*" if obligation == "network_size" else market,
        "obligation": obligation, "day": day, "figure": {**FIGURES[obligation], **figure}, "met": met,
        "met_all_day": met if met_all_day is None else met_all_day,
        "first_as_of": first or f"{day}T00:00:00Z", "last_as_of": last or f"{day}T23:00:00Z",
        "policy_version": "2026.1",
    }


def monitored_from(day: str, first: str | None = None) -> list[dict[str, Any]]:
    """One compliant row of each state obligation on `day` (from `first`, default its midnight)."""
    return [row(o, day, first=first) for o in ("parts_inventory", "emergency_coverage", "network_size")]


def responses(day: str, compliant: int, breached: int, *, market: str = "KE", withdrawn: int = 0,
              last: str | None = None) -> dict[str, Any]:
    """A response_48h row with cumulative counts (every cycle since monitoring began)."""
    judged = compliant + breached
    return row("response_48h", day, market=market, met=None, last=last, compliant=compliant, breached=breached,
               withdrawn=withdrawn, ratio=compliant / judged if judged else None)


def alert(obligation: str, opened: str, resolved: str | None = None, *, status: str | None = None,
          severity: str = "breach", market: str | None = "KE", subject: str | None = None,
          evidence: dict[str, Any] | None = None, exporter: str = EXPORTER,
          alert_id: str | None = None) -> dict[str, Any]:
    """A ComplianceAlert as the store returns it: latest message plus its transitions with seq and hashes.

    The hashes chain within the alert only (the store chains all of an exporter's transitions): the
    assessment takes the chain check as given and only carries the hashes into the evidence.
    """
    final = status or ("resolved" if resolved else "open")
    message = {
        "alert_id": alert_id or f"{obligation}/{subject or market}/{opened}/{severity}",
        "exporter_id": exporter, "market": market, "obligation": obligation, "severity": severity,
        "status": final, "subject": subject or (market or "network"), "opened_at": opened,
        "resolved_at": resolved if final == "resolved" else None, "raised_at": opened,
        "renewal_relevant": severity == "breach", "policy_version": "2026.1", "accountable": [exporter],
        "evidence": evidence if evidence is not None else {"note": "hand-built"},
    }
    steps = [{**message, "status": "open", "resolved_at": None, "raised_at": opened}]
    if final != "open":
        steps.append({**message, "raised_at": resolved or opened})
    transitions, previous = [], ""
    for seq, step in enumerate(steps, start=1):
        digest = hashlib.sha256((previous + json.dumps(step, sort_keys=True)).encode()).hexdigest()
        transitions.append({**step, "seq": seq, "hash": digest, "prev_hash": previous})
        previous = digest
    return {**message, "transitions": transitions}


def chain_of(alerts: list[dict[str, Any]], ok: bool = True, detail: str | None = None) -> dict[str, Any]:
    return {"ok": ok, "transitions": sum(len(a["transitions"]) for a in alerts), "first_bad_seq": None,
            "detail": detail}


def judge(alerts: list[dict[str, Any]], days: list[dict[str, Any]], *, as_of: str = "2027-01-01T00:00:00Z",
          period: int = 2026, book: PolicyBook = BOOK, chain: dict[str, Any] | None = None,
          exporter: str = EXPORTER) -> RenewalAssessment:
    return assess(exporter, period, alerts=alerts, days=days, policy=book, policies=[], as_of=utc(as_of),
                  chain=chain if chain is not None else chain_of(alerts))


def result(assessment: RenewalAssessment, obligation: str) -> dict[str, Any]:
    found = [o for o in assessment.obligations if o.obligation.value == obligation]
    assert len(found) == 1
    return found[0].model_dump(mode="json")
