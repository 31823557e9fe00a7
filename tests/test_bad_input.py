"""Each kind of bad event is rejected with a reason naming the field; the valid events around it count."""

import pytest

from tests.scenario import evaluate, figure, ticket

GOOD_BEFORE = ticket("g1", "opened", "2026-03-01T10:00:00Z")
GOOD_AFTER = ticket("g2", "responded", "2026-03-01T12:00:00Z")


@pytest.mark.parametrize(("bad", "words"), [
    ({**GOOD_BEFORE, "event_id": "b", "occurred_at": "2026-03-01T10:00:00"},
     "occurred_at must carry a UTC offset"),
    ({**GOOD_BEFORE, "event_id": "b", "vin": "LGXCO4CB5N0012345"},
     "vin must be 17 characters of digits and capital letters except I, O and Q"),
    ({**GOOD_BEFORE, "event_id": "b", "market": "ke"}, "market must be an ISO 3166-1 alpha-2 country code"),
    ({**GOOD_BEFORE, "event_id": "b", "market": "XX"}, "market 'XX' is not an ISO 3166-1 alpha-2 country code"),
    ({**GOOD_BEFORE, "event_id": "b", "type": "escalated"}, "type input should be"),
    ({k: v for k, v in GOOD_BEFORE.items() if k != "ticket_id"}, "ticket_id is required"),
    ({"topic": "parts-stock", "event_id": "b", "exporter_id": "EXP-1", "market": "KE", "depot_id": "D1",
      "lines": [{"part_number": "P1", "quantity_on_hand": -1}], "occurred_at": "2026-03-01T10:00:00Z"},
     "lines[0].quantity_on_hand input should be greater than or equal to 0"),
    ({"topic": "parts-stock", "event_id": "b", "exporter_id": "EXP-1", "market": "KE", "depot_id": "D1",
      "lines": [], "occurred_at": "2026-03-01T10:00:00Z"}, "lines list should have at least 1 item"),
    ({**GOOD_BEFORE, "topic": "vehicle-sales"},
     "topic must be one of service-tickets, parts-stock, outlet-status, registry (got 'vehicle-sales')"),
    ({k: v for k, v in GOOD_BEFORE.items() if k != "topic"}, "topic must be present"),
    (["not", "an", "object"], "must be a JSON object"),
])
def test_a_bad_event_is_rejected_with_its_reason_and_the_rest_still_counts(bad: object, words: str) -> None:
    doc = evaluate([GOOD_BEFORE, bad, GOOD_AFTER])  # type: ignore[list-item]
    assert len(doc["rejected"]) == 1
    assert doc["rejected"][0]["source"] == "<records>:2"
    assert words in doc["rejected"][0]["reason"]
    response = figure(doc)["response_48h"]
    assert (response["compliant"], response["p50_hours"]) == (1, 2.0)


def test_unknown_extra_fields_are_ignored() -> None:
    doc = evaluate([{**GOOD_BEFORE, "priority": "high", "technician": {"name": "A"}}, GOOD_AFTER])
    assert doc["rejected"] == []
    assert figure(doc)["response_48h"]["compliant"] == 1


def test_an_offset_other_than_utc_is_converted() -> None:
    doc = evaluate([ticket("e1", "opened", "2026-03-01T13:00:00+03:00"),
                    ticket("e2", "responded", "2026-03-03T10:00:01Z")])
    assert figure(doc)["response_48h"]["breached"] == 1  # opened 10:00Z: one second late
