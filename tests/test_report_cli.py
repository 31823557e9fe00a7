"""`monitor report --exporter ID --period YYYY [--format json|csv|html] [--output FILE] [--as-of T]`
(CONTRACT.md, Command line): the renewal assessment from a real SQLite history store, filled through
the store's own write methods as the sink fills it."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from monitor.cli import main
from monitor.contracts.policy import DEFAULT_POLICY
from monitor.history.store import HistoryStore, Source, applied_policies
from monitor.obligations.policy import PolicyBook

EXPORTER = "EXP-1"


def _alert(name: str, obligation: str, status: str, opened: str, *, resolved: str | None = None,
           raised: str, severity: str = "breach", subject: str = "KE",
           evidence: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"alert_id": f"{EXPORTER}/{name}", "exporter_id": EXPORTER, "market": "KE", "obligation": obligation,
            "severity": severity, "status": status, "subject": subject, "opened_at": opened,
            "resolved_at": resolved if status == "resolved" else None, "raised_at": raised,
            "renewal_relevant": severity == "breach", "policy_version": "2026.1", "accountable": [EXPORTER],
            "evidence": evidence or {"catalogue": 10, "stocked": 1, "rate": 0.1, "min_rate": 0.2}}


def _snapshot(as_of: str, *, compliant: int, breached: int, parts: bool = True) -> dict[str, Any]:
    judged = compliant + breached
    return {
        "exporter_id": EXPORTER, "market": "KE", "as_of": as_of, "policy_version": "2026.1",
        "response_48h": {"compliant": compliant, "breached": breached, "withdrawn": 0, "pending": 0,
                         "ratio": compliant / judged, "p50_hours": 10.0, "p95_hours": 40.0},
        "parts_inventory": {"catalogue": 10, "stocked": 3 if parts else 1, "rate": 0.3 if parts else 0.1,
                            "compliant": parts},
        "emergency_coverage": {"active_outlets": 2, "rescue_outlets": 1, "covered": True, "major_market": True},
        "network_size": {"active_outlets": 51, "required": 51, "compliant": True},
    }


REGISTRATION = {"exporter_id": EXPORTER, "name": "EXP-1 Motors", "role": "automaker", "category": "I",
                "brands": [{"name": "B", "wmi": ["LGX"]}], "major_markets": ["KE"],
                "licence": {"number": "LIC-1", "valid_from": "2026-01-01", "valid_to": "2026-12-31"},
                "common_parts": {"*": [f"P{i}" for i in range(1, 11)]}}

TICKET = {"ticket_id": "T-1", "cycle": 1, "start": {"type": "opened", "occurred_at": "2026-05-08T10:00:00Z"},
          "deadline": "2026-05-10T10:00:00Z", "answer": {"type": "responded", "occurred_at": "2026-05-10T12:00:00Z"},
          "response_hours": 50.0}

# in the order the sink would read them: (topic, message)
MESSAGES: list[tuple[str, dict[str, Any]]] = [
    # monitoring began in 2025: 10 compliant and 5 breached cycles before the period
    ("compliance", _snapshot("2025-12-31T12:00:00Z", compliant=10, breached=5)),
    # parts below the minimum from 22:00 on 1 March to 01:00 on 2 March: two days in breach
    ("alerts", _alert("parts", "parts_inventory", "open", "2026-03-01T22:00:00Z", raised="2026-03-01T22:00:01Z")),
    ("compliance", _snapshot("2026-03-01T22:00:01Z", compliant=12, breached=5, parts=False)),
    ("alerts", _alert("parts", "parts_inventory", "resolved", "2026-03-01T22:00:00Z",
                      resolved="2026-03-02T01:00:00Z", raised="2026-03-02T01:00:01Z")),
    ("compliance", _snapshot("2026-03-02T01:00:01Z", compliant=12, breached=5)),
    # a warning, then a late answer: one breached cycle
    ("alerts", _alert("warn", "response_48h", "open", "2026-05-09T22:00:00Z", raised="2026-05-09T22:00:01Z",
                      severity="warning", subject="T-1#1", evidence=TICKET)),
    ("alerts", _alert("late", "response_48h", "open", "2026-05-10T10:00:00Z", raised="2026-05-10T10:00:01Z",
                      subject="T-1#1", evidence=TICKET)),
    ("alerts", _alert("warn", "response_48h", "resolved", "2026-05-09T22:00:00Z", resolved="2026-05-10T10:00:00Z",
                      raised="2026-05-10T10:00:01Z", severity="warning", subject="T-1#1", evidence=TICKET)),
    ("alerts", _alert("late", "response_48h", "resolved", "2026-05-10T10:00:00Z", resolved="2026-05-10T12:00:00Z",
                      raised="2026-05-10T12:00:01Z", subject="T-1#1", evidence=TICKET)),
    # coverage lost for a month, then retracted by late data: counts nowhere
    ("alerts", _alert("gone", "emergency_coverage", "open", "2026-07-01T00:00:00Z", raised="2026-07-01T00:00:01Z")),
    ("alerts", _alert("gone", "emergency_coverage", "retracted", "2026-07-01T00:00:00Z",
                      raised="2026-07-01T00:05:00Z")),
    # the year ends with 29 compliant and 6 breached since monitoring began: 19 and 1 in 2026
    ("compliance", _snapshot("2026-12-31T20:00:00Z", compliant=29, breached=6)),
]


async def _fill(url: str) -> None:
    store = await HistoryStore.open(url)
    try:
        await store.record_policies(applied_policies(PolicyBook(DEFAULT_POLICY).describe(["2026.1"])))
        assert await store.record_registration(REGISTRATION)
        for offset, (topic, message) in enumerate(MESSAGES):
            source = Source(f"aftersales.{topic}", 0, offset)
            if topic == "alerts":
                assert await store.record_alert(message, source)
            else:
                assert await store.record_snapshot(message, source)
    finally:
        await store.close()


@pytest.fixture
def store_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    for name in ("MONITOR_DATABASE_URL", "MONITOR_POLICY"):
        monkeypatch.delenv(name, raising=False)
    url = f"sqlite+aiosqlite:///{tmp_path / 'history.sqlite3'}"
    asyncio.run(_fill(url))
    monkeypatch.setenv("MONITOR_DATABASE_URL", url)
    return url


def _report(*args: str) -> Result:
    return CliRunner().invoke(main, ["report", "--exporter", EXPORTER, "--period", "2026",
                                     "--as-of", "2027-01-01T00:00:00Z", *args])


def test_the_report_judges_the_stored_year(store_url: str) -> None:
    result = _report()
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["exporter_id"], doc["period"], doc["complete"], doc["overall"]) == (EXPORTER, 2026, True, "pass")
    assert doc["chain"] == {"verified": True, "transitions": 8, "first_bad_seq": None, "detail": None}
    judged = {o["obligation"]: o for o in doc["obligations"]}
    response = judged["response_48h"]
    assert (response["figure"], response["counts"], response["breaches"], response["verdict"]) == (
        0.95, {"compliant": 19, "breached": 1, "withdrawn": 0}, 1, "pass")
    parts = judged["parts_inventory"]
    assert (parts["breaches"], parts["days_in_breach"], parts["days_met"], parts["days_considered"],
            parts["verdict"]) == (1, 2, 363, 365, "pass")
    coverage = judged["emergency_coverage"]
    assert (coverage["breaches"], coverage["days_met"], coverage["evidence"]) == (0, 365, [])
    assert judged["network_size"]["days_met"] == 365
    assert judged["authorisation"]["verdict"] == "pass"
    # each breach carries its stored transitions, links of the exporter's hash chain
    [late] = response["evidence"]
    assert [t["status"] for t in late["transitions"]] == ["open", "resolved"]
    assert late["transitions"][0]["seq"] < late["transitions"][1]["seq"]
    assert all(len(t["hash"]) == 64 and t["prev_hash"] for t in late["transitions"])
    assert [p["version"] for p in doc["policy_versions"]] == ["2026.1"]


def test_a_report_before_the_year_is_over_is_provisional(store_url: str) -> None:
    result = CliRunner().invoke(main, ["report", "--exporter", EXPORTER, "--period", "2026",
                                       "--as-of", "2026-03-01T23:00:00Z"])
    doc = json.loads(result.stdout)
    assert doc["complete"] is False
    parts = next(o for o in doc["obligations"] if o["obligation"] == "parts_inventory")
    # 59 days ended; 1 March is under way and already in breach
    assert (parts["days_considered"], parts["days_in_breach"], parts["days_met"]) == (60, 1, 59)
    assert parts["evidence"][0]["resolved_at"] is None
    assert doc["reasons"][-1] == "provisional: the period was not over at as_of"


def test_csv_and_html_go_to_a_file(store_url: str, tmp_path: Path) -> None:
    target = tmp_path / "out" / "report.csv"
    target.parent.mkdir()
    result = _report("--format", "csv", "--output", str(target))
    assert (result.exit_code, result.stdout) == (0, "")
    assert f"wrote {target}: EXP-1 2026, overall pass" in result.stderr
    rows = list(csv.DictReader(io.StringIO(target.read_bytes().decode("utf-8"), newline="")))
    assert [(r["row"], r["obligation"]) for r in rows][-2:] == [("breach", "response_48h"),
                                                                 ("breach", "parts_inventory")]
    assert target.read_bytes().count(b"\r\n") == len(rows) + 1

    page = _report("--format", "html")
    assert page.exit_code == 0
    assert page.stdout.startswith("<!DOCTYPE html>") and "EXP-1" in page.stdout


def test_an_unknown_exporter_is_refused_with_status_2(store_url: str) -> None:
    result = CliRunner().invoke(main, ["report", "--exporter", "NOBODY", "--period", "2026"])
    assert (result.exit_code, result.stdout) == (2, "")
    assert "exporter 'NOBODY' is unknown to the history store" in result.stderr


def test_a_bad_period_is_refused(store_url: str) -> None:
    result = CliRunner().invoke(main, ["report", "--exporter", EXPORTER, "--period", "26x"])
    assert result.exit_code == 2 and "--period" in result.stderr


def test_an_unreadable_store_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "h.sqlite3").write_bytes(b"not a database, " * 100)
    result = CliRunner().invoke(main, ["report", "--exporter", EXPORTER, "--period", "2026", "--database-url",
                                       f"sqlite+aiosqlite:///{tmp_path / 'h.sqlite3'}"])
    assert result.exit_code == 1
    assert "could not read the history store" in result.stderr
