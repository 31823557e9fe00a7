"""A refusal's one-line reason names the field and quotes what was given, cut when it is long:
the errors keep the value whole (and a dead letter keeps the input whole besides)."""

from __future__ import annotations

import orjson

from monitor.contracts.errors import SHOWN_CHARACTERS
from monitor.stream.intake import why_refused


def ticket(**fields: str) -> bytes:
    return orjson.dumps({"event_id": "t-1", "type": "opened", "ticket_id": "T-1", "exporter_id": "EXP-001",
                         "market": "KE", "vin": "LRNCE4CB5N0012345", "occurred_at": "2026-03-01T10:00:00+03:00",
                         **fields})


def test_a_long_value_given_is_cut_in_the_reason_and_whole_in_the_errors() -> None:
    event_id = "t-1-" + "0" * 1_000_000
    refusal = why_refused("service-tickets", ticket(event_id=event_id))
    assert refusal is not None
    reason, errors = refusal
    assert reason.startswith("event_id string should have at most 200 characters (got 't-1-000")
    assert reason.endswith(f"… ({len(event_id):,} characters))")
    assert len(reason) < 200 + SHOWN_CHARACTERS
    assert errors == [{"field": "event_id", "problem": "string should have at most 200 characters", "given": event_id}]


def test_a_short_value_given_is_quoted_whole() -> None:
    refusal = why_refused("service-tickets", ticket(vin="LDN5OSZ87TB883129"))
    assert refusal is not None
    assert refusal[0] == ("vin must be 17 characters of digits and capital letters except I, O and Q "
                          "(got 'LDN5OSZ87TB883129')")
