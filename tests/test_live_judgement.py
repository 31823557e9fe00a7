"""The live judgement (`monitor.stream.live`) on its own, without a broker: whatever the arrival
order and however the clock moves, what it has published at the end equals `evaluate`; late data
retracts provisional alerts; a restart republishes nothing that did not change."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.batch.evaluate import evaluate_records
from monitor.config_files import load_registry
from monitor.contracts.lines import EVENT_LINE
from monitor.contracts.policy import DEFAULT_POLICY
from monitor.contracts.registry import ExporterRegistration
from monitor.obligations.policy import PolicyBook
from monitor.obligations.timebase import HOUR, to_micros
from monitor.stream.live import LiveNetwork
from tests.builders import registration, stock, ticket
from tests.streaming import EXAMPLE_EVENTS, EXAMPLE_REGISTRY, final_alerts

REGISTRY = load_registry(EXAMPLE_REGISTRY)


def _events(lines: list[bytes]) -> list[Any]:
    events = []
    for raw in lines:
        try:
            line = EVENT_LINE.validate_json(raw)
        except ValueError:
            continue
        if line.topic != "registry":
            events.append(line)
    return events


EXAMPLE = _events(EXAMPLE_EVENTS.read_bytes().splitlines())
EXPECTED = evaluate_records([e.model_dump(mode="json") for e in EXAMPLE], registry=REGISTRY)
AS_OF = to_micros(EXAMPLE[0].occurred_at.fromisoformat(EXPECTED["as_of"].replace("Z", "+00:00")))


class Recorded(LiveNetwork):
    """A live network that keeps every alert message it published, as its alerts topic would
    (its exporters themselves forget those of the tickets they fold away)."""

    def __init__(self, *args: Any, **options: Any) -> None:
        super().__init__(*args, **options)
        self.messages: list[dict[str, Any]] = []

    def flush(self, *args: Any, **options: Any) -> list[dict[str, Any]]:
        published = super().flush(*args, **options)
        self.messages.extend(published)
        return published


def _standing(network: Recorded) -> dict[str, dict[str, Any]]:
    return {alert_id: message for alert_id, message in final_alerts(network.messages).items()
            if message["status"] != "retracted"}


def _run(events: list[Any], registry: dict[str, ExporterRegistration], flush_every: int, window: int,
         as_of: int, horizon: int = 7 * 24 * HOUR) -> tuple[Recorded, list[dict[str, Any]]]:
    network = Recorded(registry, PolicyBook(DEFAULT_POLICY), horizon=horizon)
    clock = None
    for index, event in enumerate(events, start=1):
        at = to_micros(event.occurred_at)
        if at > as_of:
            continue
        network.add(at, event)
        clock = at if clock is None else max(clock, at)
        if index % flush_every == 0:
            network.flush(clock, clock - window)
    network.flush(as_of, as_of)
    return network, network.snapshots(as_of)


def _assert_agrees(network: Recorded, snapshots: list[dict[str, Any]], expected: dict[str, Any]) -> None:
    standing = _standing(network)
    wanted = {a["alert_id"]: a for a in expected["alerts"]}
    assert standing.keys() == wanted.keys()
    for alert_id, message in standing.items():
        # when and by which clock the live worker noticed it are its own (null from evaluate)
        assert {k: v for k, v in message.items() if k not in ("raised_at", "clock")} == {
            k: v for k, v in wanted[alert_id].items() if k not in ("raised_at", "clock")}
    figures = {(f["exporter_id"], f["market"]): f for f in expected["figures"]}
    latest = {(s["exporter_id"], s["market"]): s for s in snapshots}
    assert latest.keys() == figures.keys()
    for key, snapshot in latest.items():
        assert {k: snapshot[k] for k in figures[key]} == figures[key]


def test_in_event_time_order_it_publishes_what_evaluate_computes() -> None:
    network, snapshots = _run(sorted(EXAMPLE, key=lambda e: e.occurred_at), REGISTRY, 400, 0, AS_OF)
    _assert_agrees(network, snapshots, EXPECTED)
    retracted = [m for m in final_alerts(network.messages).values() if m["status"] == "retracted"]
    assert retracted == []  # nothing raised that later data disproved


@pytest.mark.heavy  # twelve generated networks, each judged live and by `evaluate`: seconds
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), flush_every=st.integers(50, 3000),
       window_hours=st.sampled_from([0, 1, 24]))
def test_any_arrival_order_and_clock_ends_where_evaluate_does(seed: int, flush_every: int,
                                                              window_hours: int) -> None:
    arrival = random.Random(seed).sample(EXAMPLE, len(EXAMPLE))
    # shuffled over the whole example, an event can come weeks late: a horizon longer than the
    # example lets any of them re-judge history (one older than the horizon is reported instead:
    # test_a_state_event_older_than_the_horizon_is_reported_not_silently_dropped)
    network, snapshots = _run(arrival, REGISTRY, flush_every, window_hours * HOUR, AS_OF, horizon=400 * 24 * HOUR)
    _assert_agrees(network, snapshots, EXPECTED)


def _one_exporter() -> dict[str, ExporterRegistration]:
    return {"EXP-1": ExporterRegistration.model_validate(registration())}


def _event(record: dict[str, Any]) -> Any:
    return EVENT_LINE.validate_python(record)


def _is_response_breach(message: dict[str, Any]) -> bool:
    return message["obligation"] == "response_48h" and message["severity"] == "breach"


def test_a_late_answer_within_the_deadline_retracts_the_provisional_breach() -> None:
    network = LiveNetwork(_one_exporter(), PolicyBook(DEFAULT_POLICY))
    opened = _event(ticket("e1", "opened", "2026-03-01T10:00:00Z"))
    network.add(to_micros(opened.occurred_at), opened)
    past_deadline = to_micros(opened.occurred_at) + 48 * HOUR + 1
    messages = network.flush(past_deadline, past_deadline)
    breach = [m for m in messages if _is_response_breach(m)]
    assert [(m["status"], m["opened_at"]) for m in breach] == [("open", "2026-03-03T10:00:00Z")]

    answer = _event(ticket("e2", "responded", "2026-03-03T09:59:00Z"))  # in time, arriving late
    network.add(to_micros(answer.occurred_at), answer)
    later = network.flush(past_deadline + HOUR, past_deadline + HOUR)
    assert [(m["alert_id"], m["status"]) for m in later if _is_response_breach(m)] == [
        (breach[0]["alert_id"], "retracted")]


def test_an_answer_after_the_deadline_resolves_the_breach_and_does_not_retract_it() -> None:
    network = LiveNetwork(_one_exporter(), PolicyBook(DEFAULT_POLICY))
    opened = _event(ticket("e1", "opened", "2026-03-01T10:00:00Z"))
    network.add(to_micros(opened.occurred_at), opened)
    network.flush(to_micros(opened.occurred_at) + 49 * HOUR, to_micros(opened.occurred_at) + 49 * HOUR)
    answer = _event(ticket("e2", "responded", "2026-03-03T10:00:01Z"))
    network.add(to_micros(answer.occurred_at), answer)
    later = network.flush(to_micros(opened.occurred_at) + 50 * HOUR, to_micros(opened.occurred_at) + 50 * HOUR)
    assert [(m["status"], m["resolved_at"]) for m in later if _is_response_breach(m)] == [
        ("resolved", "2026-03-03T10:00:01Z")]


def test_a_stock_report_arriving_late_rejudges_the_parts_episode_it_belongs_to() -> None:
    network = LiveNetwork(_one_exporter(), PolicyBook(DEFAULT_POLICY))
    # P1..P2 stocked from 10:00 (rate 0.2, met); at 12:00 P2 runs out (0.1: a breach) ...
    for record in (stock("s1", "D1", "2026-03-01T10:00:00Z", {"P1": 1, "P2": 1}),
                   stock("s3", "D1", "2026-03-01T12:00:00Z", {"P2": 0})):
        event = _event(record)
        network.add(to_micros(event.occurred_at), event)
    noon = to_micros(_event(stock("x", "D1", "2026-03-01T13:00:00Z", {"P1": 1})).occurred_at)
    first = network.flush(noon, noon)
    parts = [m for m in first if m["obligation"] == "parts_inventory"]
    assert [(m["status"], m["opened_at"]) for m in parts] == [("open", "2026-03-01T12:00:00Z")]
    # ... but a report of 11:00, arriving only now, shows D2 holding P2 all along: no breach ever was
    late = _event(stock("s2", "D2", "2026-03-01T11:00:00Z", {"P2": 5}))
    network.add(to_micros(late.occurred_at), late)
    second = network.flush(noon + HOUR, noon + HOUR)
    assert [(m["alert_id"], m["status"]) for m in second if m["obligation"] == "parts_inventory"] == [
        (parts[0]["alert_id"], "retracted")]


def test_duplicates_are_ignored_and_a_restart_republishes_nothing_unchanged() -> None:
    events = sorted(EXAMPLE, key=lambda e: e.occurred_at)
    # nothing is folded away here (a horizon longer than the example), so the record of what was
    # published is whole, as it is for a restart judging everything again
    network, _ = _run(events, REGISTRY, 1000, 0, AS_OF, horizon=400 * 24 * HOUR)
    published = {exporter: dict(live.published) for exporter, live in network.exporters.items()}

    restarted = LiveNetwork(REGISTRY, PolicyBook(DEFAULT_POLICY), published=lambda e: dict(published.get(e, {})),
                            horizon=400 * 24 * HOUR)
    for event in [*events, *events[:500]]:  # redelivered after the restart, some twice
        if to_micros(event.occurred_at) <= AS_OF:
            restarted.add(to_micros(event.occurred_at), event)
    assert restarted.flush(AS_OF, AS_OF) == []


def test_a_state_event_older_than_the_horizon_is_reported_not_silently_dropped() -> None:
    network = LiveNetwork(_one_exporter(), PolicyBook(DEFAULT_POLICY), horizon=HOUR)
    live = network.exporter("EXP-1")
    live.checkpoint_every = 1
    for hour in range(10, 16):
        event = _event(stock(f"s{hour}", "D1", f"2026-03-01T{hour}:00:00Z", {"P1": hour}))
        network.add(to_micros(event.occurred_at), event)
        network.flush(to_micros(event.occurred_at), to_micros(event.occurred_at))
    ancient = _event(stock("old", "D1", "2026-03-01T09:00:00Z", {"P1": 0}))
    assert network.add(to_micros(ancient.occurred_at), ancient)
    assert [f.kind for f in live.findings] == ["beyond_reorder_horizon"]
    assert live.findings[0].event_ids == ["old"]


@pytest.mark.parametrize("order", ["sorted", "reversed"])
def test_a_registration_arriving_after_the_events_judges_them_again(order: str) -> None:
    network = LiveNetwork({}, PolicyBook(DEFAULT_POLICY))
    events = [_event(ticket("e1", "opened", "2026-03-01T10:00:00Z")),
              _event(ticket("e2", "responded", "2026-03-01T11:00:00Z"))]
    for event in events if order == "sorted" else events[::-1]:
        network.add(to_micros(event.occurred_at), event)
    now = to_micros(events[1].occurred_at)
    before = network.flush(now, now)
    assert [m["evidence"]["reason"] for m in before] == ["the exporter is not registered"]
    network.register(ExporterRegistration.model_validate(registration()))
    after = network.flush(now + 1, now + 1)
    assert (before[0]["alert_id"], "retracted") in [(m["alert_id"], m["status"]) for m in after]
    assert all(m["obligation"] != "authorisation" for m in after if m["status"] == "open")
