"""Outlet activity and staleness, emergency coverage of major markets, network size by category."""

from tests.scenario import alerts, evaluate, figure, outlet, registration


def test_an_outlet_exactly_24_hours_silent_still_covers_its_market() -> None:
    doc = evaluate([outlet("o1", "O1", "2026-03-01T10:00:00Z")], as_of="2026-03-02T10:00:00Z")
    assert figure(doc)["emergency_coverage"] == {"active_outlets": 1, "rescue_outlets": 1, "covered": True,
                                                 "major_market": True}
    assert alerts(doc, "emergency_coverage") == []


def test_one_second_later_it_is_unknown_and_the_breach_opens_at_last_event_plus_24_hours() -> None:
    doc = evaluate([outlet("o1", "O1", "2026-03-01T10:00:00Z")], as_of="2026-03-02T10:00:01Z")
    assert figure(doc)["emergency_coverage"]["covered"] is False
    assert alerts(doc, "emergency_coverage") == [("breach", "KE", "open", "2026-03-02T10:00:00Z", None)]
    evidence = next(a["evidence"] for a in doc["alerts"] if a["obligation"] == "emergency_coverage")
    assert evidence["outlets"] == [{"outlet_id": "O1", "state": "unknown", "status": "operational",
                                    "emergency_rescue_24h": True, "last_status_at": "2026-03-01T10:00:00Z"}]


def test_a_heartbeat_resolves_the_staleness_breach() -> None:
    doc = evaluate([outlet("o1", "O1", "2026-03-01T10:00:00Z"), outlet("o2", "O1", "2026-03-02T15:00:00Z")])
    assert alerts(doc, "emergency_coverage") == [
        ("breach", "KE", "resolved", "2026-03-02T10:00:00Z", "2026-03-02T15:00:00Z")]


def test_only_rescue_capable_operational_outlets_cover() -> None:
    doc = evaluate([outlet("o1", "O1", "2026-03-01T10:00:00Z", rescue=False),
                    outlet("o2", "O2", "2026-03-01T10:00:00Z", status="suspended"),
                    outlet("o3", "O3", "2026-03-01T10:00:00Z", status="closed")])
    assert figure(doc)["emergency_coverage"] == {"active_outlets": 1, "rescue_outlets": 0, "covered": False,
                                                 "major_market": True}
    assert alerts(doc, "emergency_coverage") == [("breach", "KE", "open", "2026-03-01T10:00:00Z", None)]


def test_a_suspension_opens_a_breach_at_its_time() -> None:
    doc = evaluate([outlet("o1", "O1", "2026-03-01T10:00:00Z"),
                    outlet("o2", "O1", "2026-03-01T14:00:00Z", status="suspended")])
    assert alerts(doc, "emergency_coverage") == [("breach", "KE", "open", "2026-03-01T14:00:00Z", None)]


def test_coverage_alerts_are_raised_for_major_markets_only() -> None:
    doc = evaluate([outlet("o1", "O1", "2026-03-01T10:00:00Z", market="TH", rescue=False)],
                   registry=[registration(major=("KE",))])
    assert figure(doc, "TH")["emergency_coverage"]["major_market"] is False
    assert [a[1] for a in alerts(doc, "emergency_coverage")] == ["KE"]


def _outlets(count: int) -> list[dict]:
    return [outlet(f"o{i}", f"O{i}", "2026-03-01T10:00:00Z") for i in range(count)]


def test_category_one_needs_more_than_fifty_active_outlets() -> None:
    registry = [registration(category="I")]
    doc = evaluate(_outlets(51), registry=registry)
    assert doc["exporters"] == [{"exporter_id": "EXP-1", "network_size": {
        "active_outlets": 51, "required": 51, "compliant": True}}]
    assert alerts(doc, "network_size") == []
    doc = evaluate(_outlets(50), registry=registry)
    assert doc["exporters"][0]["network_size"]["compliant"] is False
    assert [(a["market"], a["subject"], a["opened_at"]) for a in doc["alerts"]
            if a["obligation"] == "network_size"] == [(None, "network", "2026-03-01T10:00:00Z")]


def test_a_category_without_a_minimum_has_no_network_requirement() -> None:
    doc = evaluate(_outlets(3), registry=[registration(category="II")])
    assert doc["exporters"][0]["network_size"] == {"active_outlets": 3, "required": None, "compliant": None}
    assert alerts(doc, "network_size") == []
