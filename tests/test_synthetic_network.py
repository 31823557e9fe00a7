"""The synthetic network: valid contract messages, in event-time order, the same for the same spec.

Its events feed the benchmarks, the bundled example and `monitor simulate`, so every one
must be a message the contract accepts, and the bundled example must be what the
generator makes today.
"""

import importlib.util
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from monitor.contracts.lines import EVENT_LINE
from monitor.contracts.registry import ExporterRegistration, Role
from monitor.simulation.network import NetworkSpec, ResponseMix, events, registrations, rfc3339

SPEC = NetworkSpec(seed=11, exporters=4, days=20, tickets_per_day_per_market=6, outage_share=0.02,
                   suspension_share=0.02, closure_share=0.01, grey_market_share=0.05)


@pytest.fixture(scope="module")
def stream() -> list[dict[str, Any]]:
    return list(events(SPEC))


def test_every_event_is_a_valid_contract_message(stream: list[dict[str, Any]]) -> None:
    for event in stream:
        EVENT_LINE.validate_json(orjson.dumps(event))


def test_events_come_in_event_time_order_with_unique_ids(stream: list[dict[str, Any]]) -> None:
    instants = [datetime.fromisoformat(e["occurred_at"]) for e in stream]
    assert all(i.tzinfo is not None for i in instants)
    assert instants == sorted(instants)
    assert len({e["event_id"] for e in stream}) == len(stream)


def test_same_spec_same_events_and_another_seed_other_events(stream: list[dict[str, Any]]) -> None:
    assert list(events(SPEC)) == stream
    assert list(events(NetworkSpec(**{**SPEC.__dict__, "seed": 12}))) != stream


def test_the_stream_shows_what_the_obligations_judge(stream: list[dict[str, Any]]) -> None:
    topics = Counter(e["topic"] for e in stream)
    assert set(topics) == {"service-tickets", "parts-stock", "outlet-status"}
    types = Counter(e["type"] for e in stream if e["topic"] == "service-tickets")
    assert set(types) == {"opened", "responded", "resolved", "reopened", "cancelled"}
    statuses = Counter(e["status"] for e in stream if e["topic"] == "outlet-status")
    assert set(statuses) == {"operational", "suspended", "closed"}
    quantities = [line["quantity_on_hand"]
                  for e in stream if e["topic"] == "parts-stock" for line in e["lines"]]
    assert 0 in quantities and max(quantities) > 0
    offsets = {e["occurred_at"][19:] for e in stream}
    assert "Z" in offsets and len(offsets) > 1


def test_grey_market_vins_carry_a_brand_the_exporter_may_not_export(stream: list[dict[str, Any]]) -> None:
    registry = {r["exporter_id"]: ExporterRegistration.model_validate(r) for r in registrations(SPEC)}
    tickets = [e for e in stream if e["topic"] == "service-tickets"]
    grey = [e for e in tickets if e["vin"][:3] not in registry[e["exporter_id"]].wmis()]
    assert 0 < len(grey) < len(tickets) * 0.2


def test_registrations_have_both_roles_and_categories() -> None:
    registry = [ExporterRegistration.model_validate(r) for r in registrations(SPEC)]
    automakers = {r.exporter_id for r in registry if r.role is Role.automaker}
    distributors = [r for r in registry if r.role is Role.authorised_distributor]
    assert distributors and all(set(d.authorised_by) <= automakers for d in distributors)
    assert {r.category for r in registry} == {"I", "II"}
    assert all(r.catalogue(m) for r in registry for m in r.major_markets)


def test_response_mix_sets_how_tickets_are_answered() -> None:
    never = NetworkSpec(seed=3, exporters=1, days=5, response_mix=ResponseMix(on_time=0, late=0, never=1),
                        cancelled_share=0, tickets_per_day_per_market=10)
    tickets = [e for e in events(never) if e["topic"] == "service-tickets"]
    assert tickets and {e["type"] for e in tickets} <= {"opened", "cancelled"}


def test_timestamps_name_the_same_instant_in_any_offset() -> None:
    instant = int(datetime(2026, 3, 1, 10, tzinfo=UTC).timestamp())
    assert rfc3339(instant, "Z") == "2026-03-01T10:00:00Z"
    assert rfc3339(instant, "+05:45") == "2026-03-01T15:45:00+05:45"
    assert rfc3339(instant, "-06:00") == "2026-03-01T04:00:00-06:00"


def test_bundled_example_is_what_the_generator_makes() -> None:
    script = Path(__file__).resolve().parent.parent / "bench" / "make_example.py"
    spec = importlib.util.spec_from_file_location("make_example", script)
    assert spec is not None and spec.loader is not None
    make_example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_example)
    for name, content in make_example.build().items():
        assert (make_example.EXAMPLES / name).read_bytes() == content, f"{name}: run bench/make_example.py"
