"""Each alert carries the evidence a reviewer needs: the figures, the outlets, the event that caused it."""

from tests.builders import FOREIGN_VIN, alert_facts, alerts_of, evaluate, outlet, stock, ticket


def test_a_parts_breach_names_the_report_that_caused_it_and_the_missing_parts() -> None:
    doc = evaluate([stock("s1", "D1", "2026-03-01T10:00:00Z", {"P1": 3, "P2": 1}),
                    stock("s2", "D1", "2026-03-02T10:00:00Z", {"P1": 0})])
    breach = alerts_of(doc, "parts_inventory")[-1]
    assert (breach["opened_at"], breach["status"]) == ("2026-03-02T10:00:00Z", "open")
    evidence = breach["evidence"]
    assert evidence["cause"] == {"kind": "event", "at": "2026-03-02T10:00:00Z", "event_id": "s2"}
    assert (evidence["catalogue"], evidence["stocked"], evidence["rate"], evidence["min_rate"]) == (10, 1, 0.1, 0.2)
    assert evidence["quantities"]["P1"] == 0 and evidence["quantities"]["P2"] == 1
    assert evidence["missing_parts"] == ["P1", "P10", "P3", "P4", "P5", "P6", "P7", "P8", "P9"]
    assert breach["renewal_relevant"] is True and breach["policy_version"] == "2026.1"


def test_a_coverage_breach_lists_the_markets_outlets_as_they_stood() -> None:
    doc = evaluate([outlet("o1", "O1", "2026-03-01T10:00:00Z"),
                    outlet("o2", "O2", "2026-03-01T12:00:00Z", rescue=False)], as_of="2026-03-02T10:00:01Z")
    assert alert_facts(doc, "emergency_coverage") == [
        ("breach", "open", "KE", "KE", "2026-03-02T10:00:00Z", None)]
    evidence = alerts_of(doc, "emergency_coverage")[0]["evidence"]
    assert evidence["cause"] == {"kind": "stale", "at": "2026-03-02T10:00:00Z", "outlet_id": "O1"}
    assert (evidence["active_outlets"], evidence["rescue_outlets"]) == (1, 0)
    assert evidence["outlets"] == [
        {"outlet_id": "O1", "state": "unknown", "status": "operational", "emergency_rescue_24h": True,
         "last_status_at": "2026-03-01T10:00:00Z"},
        {"outlet_id": "O2", "state": "active", "status": "operational", "emergency_rescue_24h": False,
         "last_status_at": "2026-03-01T12:00:00Z"},
    ]


def test_a_resolved_state_alert_records_what_resolved_it() -> None:
    doc = evaluate([outlet("o1", "O1", "2026-03-01T10:00:00Z", status="suspended"),
                    outlet("o2", "O1", "2026-03-01T16:00:00Z")])
    alert = alerts_of(doc, "emergency_coverage")[0]
    assert (alert["opened_at"], alert["resolved_at"]) == ("2026-03-01T10:00:00Z", "2026-03-01T16:00:00Z")
    assert alert["evidence"]["resolved_by"] == {"kind": "event", "at": "2026-03-01T16:00:00Z", "event_id": "o2"}


def test_a_response_breach_carries_the_ticket_and_its_timestamps() -> None:
    doc = evaluate([ticket("e1", "opened", "2026-03-01T10:00:00Z"),
                    ticket("e2", "responded", "2026-03-03T12:00:00Z")])
    breach = next(a for a in alerts_of(doc, "response_48h") if a["severity"] == "breach")
    assert breach["evidence"] == {
        "ticket_id": "T-1", "cycle": 1, "vin": "LGXCE4CB5N0012345",
        "start": {"event_id": "e1", "type": "opened", "occurred_at": "2026-03-01T10:00:00Z"},
        "deadline": "2026-03-03T10:00:00Z",
        "answer": {"event_id": "e2", "type": "responded", "occurred_at": "2026-03-03T12:00:00Z"},
        "cancellation": None, "response_hours": 50.0,
    }


def test_a_grey_market_vin_is_one_alert_per_ticket_with_the_authorised_brands() -> None:
    doc = evaluate([ticket("e1", "opened", "2026-03-01T10:00:00Z", vin=FOREIGN_VIN),
                    ticket("e2", "responded", "2026-03-01T11:00:00Z", vin=FOREIGN_VIN)])
    [alert] = alerts_of(doc, "authorisation")
    assert alert["subject"] == f"T-1/{FOREIGN_VIN}" and alert["market"] == "KE"
    assert alert["evidence"]["wmi"] == "WVW" and alert["evidence"]["authorised_wmis"] == ["LGX"]
    assert alert["evidence"]["first_event"] == {"event_id": "e1", "occurred_at": "2026-03-01T10:00:00Z"}
