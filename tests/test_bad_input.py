"""Bad events are rejected with a reason naming the field in plain words; everything around them counts.

CONTRACT.md: "Unknown extra fields are ignored (forward compatibility); a missing or malformed
required field rejects the message", and a bad line "is reported in `rejected` with its file and
line number, and the rest still count".  OBLIGATIONS.md, Time: "A naive timestamp is rejected."
"""

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from monitor.cli import main
from tests.builders import counts, evaluate, figure, outlet, registration, stock, ticket

# A ticket opened at 10:00 and answered at 12:00: compliant, 2 h.
GOOD_BEFORE = ticket("g1", "opened", "2026-03-01T10:00:00Z")
GOOD_AFTER = ticket("g2", "responded", "2026-03-01T12:00:00Z")
# Were this cancellation accepted, the cycle would be withdrawn (cancelled before the answer):
# so a compliant count of 1 shows the bad variants below were not used.
CANCEL = ticket("b", "cancelled", "2026-03-01T11:00:00Z")
# Were this report accepted, P1 and P2 of the catalogue P1..P10 would be stocked in KE.
STOCK = stock("b", "D1", "2026-03-01T11:00:00Z", {"P1": 3, "P2": 1})

# Words of a library's internals that a person should never have to read.
JARGON = ("string_pattern_mismatch", "Value error", "[type=", "errors.pydantic.dev", "^[", "validation error")


def _without(record: dict[str, Any], field: str) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != field}


BAD_EVENTS = {
    "naive timestamp": ({**CANCEL, "occurred_at": "2026-03-01T11:00:00"}, ["occurred_at", "offset"]),
    "vin with letter O": ({**CANCEL, "vin": "LGXCO4CB5N0012345"}, ["vin"]),
    "vin too short": ({**CANCEL, "vin": "LGXCE4CB5N001234"}, ["vin"]),
    "lower-case market": ({**CANCEL, "market": "ke"}, ["market"]),
    "unknown market XX": ({**CANCEL, "market": "XX"}, ["market", "XX"]),
    "unknown ticket type": ({**CANCEL, "type": "escalated"}, ["type"]),
    "missing ticket_id": (_without(CANCEL, "ticket_id"), ["ticket_id"]),
    "missing occurred_at": (_without(CANCEL, "occurred_at"), ["occurred_at"]),
    "missing exporter_id": (_without(CANCEL, "exporter_id"), ["exporter_id"]),
    "negative quantity": ({**STOCK, "lines": [{"part_number": "P1", "quantity_on_hand": -1}]},
                          ["quantity_on_hand"]),
    "empty lines list": ({**STOCK, "lines": []}, ["lines"]),
    "unknown outlet status": (outlet("b", "O1", "2026-03-01T11:00:00Z", status="open"), ["status"]),
    "unknown topic": ({**CANCEL, "topic": "vehicle-sales"}, ["topic", "vehicle-sales"]),
    "missing topic": (_without(CANCEL, "topic"), ["topic"]),
    "not an object": (["not", "an", "object"], ["object"]),
}


@pytest.mark.parametrize(("bad", "words"), list(BAD_EVENTS.values()), ids=list(BAD_EVENTS))
def test_bad_event_is_rejected_naming_the_field_and_the_rest_still_counts(bad: Any, words: list[str]) -> None:
    doc = evaluate([GOOD_BEFORE, bad, GOOD_AFTER])
    assert len(doc["rejected"]) == 1, doc["rejected"]
    rejected = doc["rejected"][0]
    assert rejected["source"] == "<records>:2"
    for word in words:
        assert word in rejected["reason"], f"{word!r} not in {rejected['reason']!r}"
    for jargon in JARGON:
        assert jargon not in rejected["reason"]
    # the valid events around it still count, and the bad one does not
    assert counts(doc) == {"compliant": 1, "breached": 0, "withdrawn": 0, "pending": 0}
    assert figure(doc)["response_48h"]["p50_hours"] == 2.0
    assert figure(doc)["parts_inventory"]["stocked"] == 0


def test_naive_timestamp_reason_says_an_offset_is_needed() -> None:
    doc = evaluate([GOOD_BEFORE, {**GOOD_AFTER, "occurred_at": "2026-03-01T12:00:00"}])
    assert [r["source"] for r in doc["rejected"]] == ["<records>:2"]
    assert "occurred_at" in doc["rejected"][0]["reason"]
    # the answer was not used: the cycle is still open at as_of 10:00, the latest accepted occurred_at
    assert counts(doc) == {"compliant": 0, "breached": 0, "withdrawn": 0, "pending": 1}


def test_several_bad_records_are_each_reported_at_their_position() -> None:
    records = [{**CANCEL, "vin": "LGXCO4CB5N0012345"}, GOOD_BEFORE, "just a string", GOOD_AFTER,
               {**STOCK, "market": "XX"}]
    doc = evaluate(records)
    assert [r["source"] for r in doc["rejected"]] == ["<records>:1", "<records>:3", "<records>:5"]
    assert counts(doc)["compliant"] == 1


def test_unknown_extra_fields_are_ignored() -> None:
    records = [
        {**GOOD_BEFORE, "priority": "high", "technician": {"name": "A", "skills": [1, 2]}},
        {**GOOD_AFTER, "schema_version": 7},
        {**stock("s1", "D1", "2026-03-01T11:00:00Z", {"P1": 3}), "warehouse_temp": 21.5},
        {**outlet("o1", "O1", "2026-03-01T11:00:00Z"), "geo": {"lat": -1.28, "lon": 36.82}},
    ]
    records[2]["lines"][0]["bin"] = "A-17"
    doc = evaluate(records)
    assert doc["rejected"] == []
    assert counts(doc)["compliant"] == 1
    assert figure(doc)["parts_inventory"]["stocked"] == 1
    assert figure(doc)["emergency_coverage"]["active_outlets"] == 1


def test_an_offset_other_than_utc_is_converted_not_rejected() -> None:
    doc = evaluate([ticket("e1", "opened", "2026-03-01T13:00:00+03:00"),
                    ticket("e2", "responded", "2026-03-03T10:00:01Z")])
    assert doc["rejected"] == []
    assert counts(doc)["breached"] == 1  # opened 10:00Z, answered 48 h + 1 s later


def test_lines_that_are_not_json_or_not_objects_are_rejected_by_file_and_line(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    lines = [json.dumps(GOOD_BEFORE), "{this is not json", json.dumps(GOOD_AFTER), "[1, 2, 3]", '"a string"',
             json.dumps({**CANCEL, "market": "ke"})]
    Path("events.jsonl").write_text("\n".join(lines) + "\n")
    Path("registry.yaml").write_text(yaml.safe_dump([registration()]))
    result = CliRunner().invoke(main, ["evaluate", "events.jsonl", "--registry", "registry.yaml",
                                       "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    rejected = {r["source"]: r["reason"] for r in doc["rejected"]}
    assert sorted(rejected) == ["events.jsonl:2", "events.jsonl:4", "events.jsonl:5", "events.jsonl:6"]
    assert "JSON" in rejected["events.jsonl:2"]
    assert "object" in rejected["events.jsonl:4"]
    assert "object" in rejected["events.jsonl:5"]
    assert "market" in rejected["events.jsonl:6"]
    ke = next(f for f in doc["figures"] if f["exporter_id"] == "EXP-1" and f["market"] == "KE")
    assert ke["response_48h"]["compliant"] == 1
