"""An exporter's live state checkpointed and restored, as a worker taking over does, without Kafka."""

from __future__ import annotations

import random
from typing import Any

import pytest

from monitor.contracts.policy import DEFAULT_POLICY
from monitor.obligations.policy import PolicyBook
from monitor.obligations.timebase import HOUR, to_micros
from monitor.stream import checkpoint
from monitor.stream.live import LiveNetwork
from tests.builders import ticket
from tests.test_live_judgement import (
    AS_OF,
    EXAMPLE,
    EXPECTED,
    REGISTRY,
    Recorded,
    _assert_agrees,
    _event,
    _one_exporter,
    _standing,
)

POLICY = PolicyBook(DEFAULT_POLICY)
SHUFFLED = 400 * 24 * HOUR  # a horizon longer than the example: any event shuffled weeks late re-judges history


def _feed(network: LiveNetwork, events: list, flush_every: int = 300) -> int:
    clock = 0
    for index, event in enumerate(events, start=1):
        at = to_micros(event.occurred_at)
        if at > AS_OF:
            continue
        network.add(at, event)
        clock = max(clock, at)
        if index % flush_every == 0:
            network.flush(clock, clock - HOUR)
    return clock


def _tickets(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m["obligation"] == "response_48h"]


def _taken_over(network: Recorded) -> Recorded:
    published = {e: dict(live.published) for e, live in network.exporters.items()}
    restored = Recorded(REGISTRY, POLICY, horizon=network.horizon)
    restored.messages = list(network.messages)  # the alerts topic as the new owner finds it
    for exporter_id, live in network.exporters.items():
        blob = checkpoint.freeze(live)
        restored.adopt(checkpoint.thaw(blob, restored.registry, POLICY, published[exporter_id]))
    return restored


def test_a_restored_exporter_publishes_nothing_new_and_goes_on_to_what_evaluate_computes() -> None:
    arrival = random.Random(7).sample(EXAMPLE, len(EXAMPLE))
    half = len(arrival) // 2
    original = Recorded(REGISTRY, POLICY, horizon=SHUFFLED)
    clock = _feed(original, arrival[:half])
    original.flush(clock, clock - HOUR)

    restored = _taken_over(original)
    assert restored.flush(clock, clock - HOUR) == []  # everything it would say was said already
    assert _standing(restored) == _standing(original)

    for network in (original, restored):
        _feed(network, arrival[half:])
        network.flush(AS_OF, AS_OF)
    snapshots = restored.snapshots(AS_OF)
    _assert_agrees(restored, snapshots, EXPECTED)
    assert _standing(restored) == _standing(original)


def test_a_checkpoint_shares_the_registry_and_policy_rather_than_copying_them() -> None:
    network = LiveNetwork(REGISTRY, POLICY)
    _feed(network, sorted(EXAMPLE, key=lambda e: e.occurred_at))
    live = next(iter(network.exporters.values()))
    restored = checkpoint.thaw(checkpoint.freeze(live), network.registry, POLICY, {})
    assert restored.registry is network.registry and restored.engine.registry is network.registry
    assert restored.policy is POLICY and restored.engine.policy is POLICY


def test_the_latest_whole_slot_is_read_and_one_written_half_way_is_not() -> None:
    blob_a, blob_b = random.Random(1).randbytes(700_000), random.Random(2).randbytes(600_000)
    slot_a = checkpoint.chunks(b"a", 100, blob_a)
    slot_b = checkpoint.chunks(b"b", 250, blob_b)
    assert len(slot_a) == 3 and all(len(value) <= checkpoint.CHUNK_BYTES + 16 for _, value in slot_a)

    assert checkpoint.latest([*slot_a, *slot_b]) == checkpoint.Checkpoint(b"b", 250, blob_b)
    # the worker stopped after the first chunk of a newer checkpoint in slot a: slot b is whole
    newer_a = checkpoint.chunks(b"a", 400, random.Random(3).randbytes(700_000))
    assert checkpoint.latest([newer_a[0], *slot_a[1:], *slot_b]) == checkpoint.Checkpoint(b"b", 250, blob_b)
    # with its last chunk written, the newer one is read
    assert checkpoint.latest([*newer_a, *slot_b]).offset == 400
    assert checkpoint.latest([]) is None


def test_a_checkpoint_of_another_format_is_refused_not_half_read(monkeypatch: pytest.MonkeyPatch) -> None:
    network = LiveNetwork(REGISTRY, POLICY)
    _feed(network, sorted(EXAMPLE, key=lambda e: e.occurred_at)[:500])
    live = next(iter(network.exporters.values()))
    monkeypatch.setattr(checkpoint, "FORMAT", checkpoint.FORMAT + 1)  # as a later version would write it
    blob = checkpoint.freeze(live)
    monkeypatch.undo()
    with pytest.raises(checkpoint.FormatRefused, match=f"format {checkpoint.FORMAT + 1}, this worker reads"):
        checkpoint.thaw(blob, network.registry, POLICY, {})


def test_an_alert_published_after_the_checkpoint_is_retracted_when_the_events_since_withdraw_it() -> None:
    """The previous owner checkpointed a ticket before its at-risk point, then its clock passed
    that point (a warning published) and it was killed. The worker taking over has a checkpoint
    that shows no alert for the ticket, and the published record that shows the warning open:
    the cancellation among the events since the checkpoint must retract the warning."""
    network = LiveNetwork(_one_exporter(), POLICY)
    opened = _event(ticket("e1", "opened", "2026-03-01T10:00:00Z"))
    at = to_micros(opened.occurred_at)
    network.add(at, opened)
    assert _tickets(network.flush(at + HOUR, at + HOUR)) == []
    live = network.exporters[opened.exporter_id]
    blob = checkpoint.freeze(live)  # the ticket judged, nothing raised yet
    warned = _tickets(network.flush(at + 40 * HOUR, at + 40 * HOUR))
    assert [(m["severity"], m["status"]) for m in warned] == [("warning", "open")]

    taking_over = LiveNetwork(_one_exporter(), POLICY)
    taking_over.adopt(checkpoint.thaw(blob, taking_over.registry, POLICY, dict(live.published)))
    cancelled = _event(ticket("e2", "cancelled", "2026-03-02T09:00:00Z"))  # before the at-risk point
    taking_over.add(to_micros(cancelled.occurred_at), cancelled)
    messages = _tickets(taking_over.flush(at + 41 * HOUR, at + 41 * HOUR))
    assert [(m["alert_id"], m["status"]) for m in messages] == [(warned[0]["alert_id"], "retracted")]
