"""The evaluate document has the shape of the Evaluation model, and says who answers for what."""

from datetime import UTC, datetime

import pytest

from monitor.batch.evaluate import evaluate_records
from monitor.contracts.outputs import Evaluation
from monitor.contracts.policy import DEFAULT_POLICY
from monitor.obligations.engine import ComplianceEngine
from monitor.obligations.policy import PolicyBook

AUTOMAKER = {
    "exporter_id": "AUTO-1", "role": "automaker", "category": "I",
    "brands": [{"name": "Volta", "wmi": ["LGX"]}],
    "licence": {"number": "L-1", "valid_from": "2026-01-01", "valid_to": "2026-12-31"},
    "major_markets": ["KE"], "common_parts": {"*": ["P1", "P2"]},
}
DISTRIBUTOR = {
    "exporter_id": "DIST-1", "role": "authorised_distributor", "category": "II", "authorised_by": ["AUTO-1"],
    "brands": [], "licence": {"number": "L-2", "valid_from": "2026-01-01", "valid_to": "2026-12-31"},
    "major_markets": ["NG"], "common_parts": {"*": ["P1"]},
}


def _ticket(event_id: str, kind: str, exporter: str, at: str, vin: str = "LGXCE4CB5N0012345") -> dict:
    return {"topic": "service-tickets", "event_id": event_id, "type": kind, "ticket_id": f"T-{exporter}",
            "exporter_id": exporter, "market": "NG", "vin": vin, "occurred_at": at}


def test_the_document_validates_against_the_evaluation_model() -> None:
    events = [
        _ticket("e1", "opened", "DIST-1", "2026-03-01T10:00:00Z"),
        _ticket("e2", "opened", "AUTO-1", "2026-03-01T11:00:00Z", vin="WVWZZZ1JZXW000001"),
        {"topic": "parts-stock", "event_id": "s1", "exporter_id": "AUTO-1", "market": "KE", "depot_id": "D",
         "lines": [{"part_number": "P1", "quantity_on_hand": 0}], "occurred_at": "2026-03-04T10:00:00Z"},
        {"topic": "service-tickets", "event_id": "bad"},
    ]
    doc = evaluate_records(events, registry=[AUTOMAKER, DISTRIBUTOR])
    Evaluation.model_validate(doc)
    assert doc["rejected"][0]["source"] == "<records>:4"


def test_a_distributors_alerts_name_the_automakers_that_authorised_it() -> None:
    doc = evaluate_records([_ticket("e1", "opened", "DIST-1", "2026-03-01T10:00:00Z")],
                           registry=[AUTOMAKER, DISTRIBUTOR])
    distributor_alerts = [a for a in doc["alerts"] if a["exporter_id"] == "DIST-1"]
    assert distributor_alerts, "the unanswered ticket and the uncovered major market raise alerts"
    assert {tuple(a["accountable"]) for a in distributor_alerts} == {("DIST-1", "AUTO-1")}


def test_a_distributor_may_service_its_authorising_automakers_brands() -> None:
    doc = evaluate_records([_ticket("e1", "opened", "DIST-1", "2026-03-01T10:00:00Z")],
                           registry=[AUTOMAKER, DISTRIBUTOR])
    assert [a for a in doc["alerts"] if a["obligation"] == "authorisation"] == []


def test_two_different_messages_with_one_event_id_keep_the_earlier_and_are_reported() -> None:
    first = _ticket("dup", "opened", "DIST-1", "2026-03-01T10:00:00Z")
    second = {**first, "occurred_at": "2026-03-01T09:00:00Z"}
    for order in ([first, second], [second, first]):
        doc = evaluate_records(order, registry=[AUTOMAKER, DISTRIBUTOR], as_of=datetime(2026, 3, 4, tzinfo=UTC))
        cycles = [a["evidence"]["start"]["occurred_at"] for a in doc["alerts"]
                  if a["obligation"] == "response_48h"]
        assert cycles == ["2026-03-01T09:00:00Z", "2026-03-01T09:00:00Z"]  # its warning and its breach
        assert [q["kind"] for q in doc["data_quality"] if q["exporter_id"] == "DIST-1"] == ["conflicting_duplicate"]


def test_an_identical_duplicate_is_silently_ignored() -> None:
    event = _ticket("e1", "opened", "DIST-1", "2026-03-01T10:00:00Z")
    once = evaluate_records([event], registry=[AUTOMAKER, DISTRIBUTOR])
    twice = evaluate_records([event, dict(event)], registry=[AUTOMAKER, DISTRIBUTOR])
    assert once == twice


def test_the_engine_refuses_instants_out_of_event_time_order() -> None:
    engine = ComplianceEngine({}, PolicyBook(DEFAULT_POLICY))
    engine.apply_instant(2_000, [])
    with pytest.raises(ValueError, match="event-time order"):
        engine.apply_instant(1_000, [])


def test_a_registered_exporter_that_sent_nothing_is_listed_but_raises_no_alert() -> None:
    doc = evaluate_records([_ticket("e1", "opened", "DIST-1", "2026-03-01T10:00:00Z")],
                           registry=[AUTOMAKER, DISTRIBUTOR])
    assert {f["exporter_id"] for f in doc["figures"]} == {"AUTO-1", "DIST-1"}
    assert not [a for a in doc["alerts"] if a["exporter_id"] == "AUTO-1"]
    assert {"kind": "silent_exporter", "exporter_id": "AUTO-1"}.items() <= next(
        q for q in doc["data_quality"] if q["exporter_id"] == "AUTO-1").items()
