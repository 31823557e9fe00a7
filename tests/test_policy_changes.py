"""A policy version takes effect at 00:00:00Z of its effective_from date, without any event."""

from datetime import UTC, datetime

from monitor.batch.evaluate import evaluate_records
from monitor.contracts.policy import PolicyFile

REGISTRY = [{
    "exporter_id": "EXP-1", "role": "automaker", "category": "II",
    "brands": [{"name": "B", "wmi": ["LGX"]}],
    "licence": {"number": "L-1", "valid_from": "2026-01-01", "valid_to": "2026-12-31"},
    "major_markets": ["KE"], "common_parts": {"*": [f"P{i}" for i in range(1, 11)]},
}]


def _policy(second: dict) -> PolicyFile:
    return PolicyFile.model_validate([
        {"version": "2026.1", "effective_from": "2026-01-01"},
        {"version": "2026.2", "effective_from": "2026-03-05", "parameters": {
            name: {"value": value, "status": "official", "source": "amended rules"}
            for name, value in second.items()}},
    ])


def _stock(event_id: str, lines: list[tuple[str, int]], at: str) -> dict:
    return {"topic": "parts-stock", "event_id": event_id, "exporter_id": "EXP-1", "market": "KE",
            "depot_id": "D1", "lines": [{"part_number": p, "quantity_on_hand": q} for p, q in lines],
            "occurred_at": at}


def _outlet(event_id: str, at: str) -> dict:
    return {"topic": "outlet-status", "event_id": event_id, "exporter_id": "EXP-1", "outlet_id": "O1",
            "market": "KE", "status": "operational", "capabilities": ["emergency_rescue_24h"],
            "occurred_at": at}


def _alerts(doc: dict, obligation: str) -> list[tuple[str, str, str | None, str]]:
    return [(a["status"], a["opened_at"], a["resolved_at"], a["policy_version"])
            for a in doc["alerts"] if a["obligation"] == obligation]


def test_a_stricter_minimum_rate_opens_a_breach_at_the_start_of_its_day() -> None:
    # 3 of 10 parts stocked: compliant at 20 %, not at 35 %
    events = [_stock("s1", [("P1", 1), ("P2", 1), ("P3", 1)], "2026-03-01T10:00:00Z")]
    doc = evaluate_records(events, registry=REGISTRY, policy=_policy({"parts_inventory.min_rate": 0.35}),
                           as_of=datetime(2026, 3, 6, tzinfo=UTC))
    assert _alerts(doc, "parts_inventory") == [("open", "2026-03-05T00:00:00Z", None, "2026.2")]
    assert doc["figures"][0]["parts_inventory"]["compliant"] is False
    assert doc["policy_versions"] == ["2026.1", "2026.2"]
    applied = {p["version"]: p["parameters"]["parts_inventory.min_rate"] for p in doc["policies"]}
    assert applied["2026.2"] == {"value": 0.35, "status": "official", "source": "amended rules"}
    assert applied["2026.1"]["status"] == "reported"


def test_before_the_change_only_the_first_version_is_named() -> None:
    events = [_stock("s1", [("P1", 1), ("P2", 1), ("P3", 1)], "2026-03-01T10:00:00Z")]
    doc = evaluate_records(events, registry=REGISTRY, policy=_policy({"parts_inventory.min_rate": 0.35}),
                           as_of=datetime(2026, 3, 4, 23, 59, 59, tzinfo=UTC))
    assert _alerts(doc, "parts_inventory") == []
    assert doc["policy_versions"] == ["2026.1"]


def test_a_shorter_stale_after_makes_a_silent_outlet_unknown_at_the_change() -> None:
    # heard from at 03-04 20:00; stale after 24 h under 2026.1, after 2 h under 2026.2 (from 03-05 00:00)
    events = [_outlet("o1", "2026-03-04T20:00:00Z")]
    doc = evaluate_records(events, registry=REGISTRY, policy=_policy({"outlets.stale_after_hours": 2}),
                           as_of=datetime(2026, 3, 5, 1, tzinfo=UTC))
    assert _alerts(doc, "emergency_coverage") == [("open", "2026-03-05T00:00:00Z", None, "2026.2")]
    assert doc["figures"][0]["emergency_coverage"]["covered"] is False


def test_a_heartbeat_after_the_change_is_judged_by_the_new_staleness() -> None:
    events = [_outlet("o1", "2026-03-05T06:00:00Z")]
    policy = _policy({"outlets.stale_after_hours": 2})
    within = evaluate_records(events, registry=REGISTRY, policy=policy, as_of=datetime(2026, 3, 5, 8, tzinfo=UTC))
    assert within["figures"][0]["emergency_coverage"]["covered"] is True
    after = evaluate_records(events, registry=REGISTRY, policy=policy,
                             as_of=datetime(2026, 3, 5, 8, 0, 1, tzinfo=UTC))
    assert _alerts(after, "emergency_coverage") == [("open", "2026-03-05T08:00:00Z", None, "2026.2")]


def test_ticket_cycles_keep_the_deadline_of_the_version_in_force_at_their_start() -> None:
    def ticket(event_id: str, kind: str, ticket_id: str, at: str) -> dict:
        return {"topic": "service-tickets", "event_id": event_id, "type": kind, "ticket_id": ticket_id,
                "exporter_id": "EXP-1", "market": "KE", "vin": "LGXCE4CB5N0012345", "occurred_at": at}

    # 2026.2 shortens the deadline to 24 h (warning at 12 h) from 03-05
    policy = _policy({"response_48h.deadline_hours": 24, "response_48h.warn_at_hours": 12})
    events = [
        ticket("a1", "opened", "T-A", "2026-03-04T12:00:00Z"),     # started under 2026.1: 48 h
        ticket("a2", "responded", "T-A", "2026-03-05T20:00:00Z"),  # 32 h: compliant under 48 h
        ticket("b1", "opened", "T-B", "2026-03-05T12:00:00Z"),     # started under 2026.2: 24 h
        ticket("b2", "responded", "T-B", "2026-03-06T20:00:00Z"),  # 32 h: breach under 24 h
    ]
    doc = evaluate_records(events, registry=REGISTRY, policy=policy)
    response = doc["figures"][0]["response_48h"]
    assert (response["compliant"], response["breached"]) == (1, 1)
    breaches = [(a["subject"], a["opened_at"], a["policy_version"]) for a in doc["alerts"]
                if a["obligation"] == "response_48h" and a["severity"] == "breach"]
    assert breaches == [("T-B#1", "2026-03-06T12:00:00Z", "2026.2")]


def test_the_table_names_every_threshold_applied_and_what_it_rests_on(tmp_path) -> None:
    import orjson
    import yaml
    from click.testing import CliRunner

    from monitor.cli import main

    events = tmp_path / "events.jsonl"
    events.write_bytes(orjson.dumps(_stock("s1", [("P1", 1)], "2026-03-06T10:00:00Z")) + b"\n")
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump([v.model_dump(mode="json") for v in
                                      _policy({"parts_inventory.min_rate": 0.35}).root]))
    registry = tmp_path / "registry.yaml"
    registry.write_text(yaml.safe_dump(REGISTRY))
    result = CliRunner().invoke(main, ["evaluate", str(events), "--registry", str(registry), "--policy", str(policy)],
                                env={"COLUMNS": "400"})
    assert result.exit_code == 0
    assert "policy 2026.2 from 2026-03-05 (1 official, 7 reported" in result.stdout
    assert "parts_inventory.min_rate 0.35 [official]" in result.stdout
    assert "response_48h.deadline_hours 48.0 [reported]" in result.stdout
