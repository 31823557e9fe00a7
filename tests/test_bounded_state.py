"""A live exporter's state stays bounded: settled tickets fold into counters, old event ids are
forgotten, and what it publishes still equals what `evaluate` computes. Without Kafka."""

from __future__ import annotations

import tracemalloc
from datetime import date, timedelta
from typing import Any

from monitor.batch.evaluate import evaluate_records
from monitor.contracts.lines import EVENT_LINE
from monitor.contracts.policy import DEFAULT_POLICY
from monitor.contracts.registry import ExporterRegistration
from monitor.obligations.policy import PolicyBook
from monitor.obligations.timebase import HOUR, Micros, to_datetime, to_micros
from monitor.simulation.network import NetworkSpec, events, registrations
from monitor.stream import checkpoint
from monitor.stream.live import LiveNetwork
from tests.builders import outlet, registration, stock, ticket, utc
from tests.streaming import final_alerts

POLICY = PolicyBook(DEFAULT_POLICY)
SPEC = NetworkSpec(exporters=2, markets_per_exporter=2, outlets_per_market=3, catalogue_size=8,
                   tickets_per_day_per_market=15.0, start=date(2026, 3, 1), days=40)
IGNORED = ("raised_at", "clock")  # when and by which clock the live worker noticed it are its own


def _registry(records: list[dict[str, Any]]) -> dict[str, ExporterRegistration]:
    return {r["exporter_id"]: ExporterRegistration.model_validate(r) for r in records}


def _judge_in_order(network: LiveNetwork, records: list[dict[str, Any]], as_of: Micros,
                    flush_every: int = 200) -> list[dict[str, Any]]:
    """Every alert message published, the events delivered in event-time order."""
    published = []
    for index, record in enumerate(records, start=1):
        line = EVENT_LINE.validate_python(record)
        at = to_micros(line.occurred_at)
        network.add(at, line)
        if index % flush_every == 0:
            published.extend(network.flush(at, at - HOUR))
    published.extend(network.flush(as_of, as_of))
    return published


def test_a_long_history_keeps_only_what_can_still_change_and_agrees_with_evaluate() -> None:
    registry = _registry(registrations(SPEC))
    records = sorted(events(SPEC), key=lambda r: utc(r["occurred_at"]))
    tickets = {r["ticket_id"] for r in records if r["topic"] == "service-tickets"}
    as_of = max(to_micros(utc(r["occurred_at"])) for r in records)
    network = LiveNetwork(registry, POLICY, horizon=48 * HOUR, checkpoint_every=500)
    published = _judge_in_order(network, records, as_of)

    expected = evaluate_records(records, registry=list(registry.values()), as_of=to_datetime(as_of))
    standing = {a: m for a, m in final_alerts(published).items() if m["status"] != "retracted"}
    wanted = {a["alert_id"]: a for a in expected["alerts"]}
    assert standing.keys() == wanted.keys()
    for alert_id, message in standing.items():
        assert {k: v for k, v in message.items() if k not in IGNORED} == {
            k: v for k, v in wanted[alert_id].items() if k not in IGNORED}
    snapshots = {(s["exporter_id"], s["market"]): s for s in network.snapshots(as_of)}
    for figure in expected["figures"]:
        assert {k: snapshots[(figure["exporter_id"], figure["market"])][k] for k in figure} == figure

    kept = sum(len(live.tickets) for live in network.exporters.values())
    folded = sum(len(live.folded) for live in network.exporters.values())
    seen = sum(len(live.seen) for live in network.exporters.values())
    print(f"{len(records):,} events, {len(tickets):,} tickets over {SPEC.days} days: {kept:,} tickets kept whole, "
          f"{folded:,} folded; {seen:,} event ids remembered")
    assert kept + folded == len(tickets)
    assert kept < len(tickets) / 5, "40 days of tickets, a 2-day horizon: most are settled and folded"
    assert seen < len(records) / 5
    for live in network.exporters.values():
        # what is published of a folded ticket is forgotten with it
        assert all(m["obligation"] != "response_48h" or m["subject"].rsplit("#", 1)[0] in live.tickets
                   for m in live.published.values())


def _one_exporter() -> LiveNetwork:
    return LiveNetwork({"EXP-1": ExporterRegistration.model_validate(registration("EXP-1"))}, POLICY,
                       horizon=24 * HOUR, checkpoint_every=10)


def _heartbeats(start: str, days: int) -> list[dict[str, Any]]:
    """An outlet's status every two hours: the state events that move the history on."""
    first = utc(start)
    return [outlet(f"o-{n}", "O-1", (first + timedelta(hours=2 * n)).isoformat(), exporter="EXP-1")
            for n in range(days * 12)]


def test_a_ticket_reopened_after_it_was_folded_continues_with_its_next_cycle() -> None:
    records = [ticket("t-1", "opened", "2026-03-01T08:00:00Z", exporter="EXP-1"),
               ticket("t-2", "responded", "2026-03-01T09:00:00Z", exporter="EXP-1"),
               ticket("t-3", "resolved", "2026-03-01T10:00:00Z", exporter="EXP-1"),
               *_heartbeats("2026-03-01T00:00:00Z", 6)]
    records.sort(key=lambda r: utc(r["occurred_at"]))
    network = _one_exporter()
    published = _judge_in_order(network, records, to_micros(utc("2026-03-07T00:00:00Z")), flush_every=5)
    live = network.exporters["EXP-1"]
    assert live.folded == {"T-1": (1, "resolved")} and "T-1" not in live.tickets

    later = [ticket("t-4", "reopened", "2026-03-07T08:00:00Z", exporter="EXP-1")]
    as_of = "2026-03-09T12:00:00Z"
    published += _judge_in_order(network, later, to_micros(utc(as_of)))
    expected = evaluate_records([*records, *later], registry=[registration("EXP-1")], as_of=utc(as_of))
    breaches = [m for m in final_alerts(published).values() if m["obligation"] == "response_48h"]
    assert [(m["subject"], m["severity"], m["status"]) for m in breaches if m["severity"] == "breach"] == [
        ("T-1#2", "breach", "open")]
    assert {a["alert_id"] for a in expected["alerts"] if a["obligation"] == "response_48h"} == {
        m["alert_id"] for m in breaches}
    response = network.snapshots(to_micros(utc(as_of)))[0]["response_48h"]
    assert (response["compliant"], response["breached"]) == (1, 1)


def test_a_late_step_of_a_folded_ticket_is_reported_and_not_counted() -> None:
    records = [ticket("t-1", "opened", "2026-03-01T08:00:00Z", exporter="EXP-1"),
               ticket("t-2", "responded", "2026-03-01T09:00:00Z", exporter="EXP-1"),
               *_heartbeats("2026-03-01T00:00:00Z", 4)]
    records.sort(key=lambda r: utc(r["occurred_at"]))
    network = _one_exporter()
    as_of = to_micros(utc("2026-03-05T00:00:00Z"))
    _judge_in_order(network, records, as_of, flush_every=5)
    live = network.exporters["EXP-1"]
    assert "T-1" in live.folded

    late = ticket("t-9", "opened", "2026-03-01T12:00:00Z", exporter="EXP-1")  # a second start, days late
    assert network.add(to_micros(utc(late["occurred_at"])), EVENT_LINE.validate_python(late))
    assert network.flush(as_of, as_of) == []
    assert [f.kind for f in live.findings][-1] == "beyond_reorder_horizon"
    assert "was settled and folded" in live.findings[-1].detail
    assert network.snapshots(as_of)[0]["response_48h"]["compliant"] == 1


def test_an_exporter_with_few_events_keeps_only_about_a_horizon_of_them() -> None:
    """Checkpoints come by event time too, not only every `checkpoint_every` events: an exporter
    sending a few events a day keeps no more than the horizon and a quarter of them, however
    long its history."""
    days = 60
    records = [*_heartbeats("2026-03-01T00:00:00Z", days),
               *(ticket(f"t-{day}-{step}", step, f"2026-03-{1 + day % 28:02d}T{8 + n:02d}:00:00Z",
                        exporter="EXP-1", ticket_id=f"T-{day}")
                 for day in range(28) for n, step in enumerate(("opened", "responded", "resolved")))]
    records.sort(key=lambda r: utc(r["occurred_at"]))
    network = LiveNetwork({"EXP-1": ExporterRegistration.model_validate(registration("EXP-1"))}, POLICY,
                          horizon=24 * HOUR)  # the default checkpoint_every (5,000) is never reached
    as_of = to_micros(utc("2026-03-01T00:00:00Z")) + days * 24 * HOUR
    _judge_in_order(network, records, as_of, flush_every=5)
    live = network.exporters["EXP-1"]

    kept_from = live.applied[0][0]
    assert live.engine.now is not None and live.engine.now - kept_from <= 24 * HOUR * 5 // 4 + 2 * HOUR * 5
    assert len(live.applied) < len(records) / 20 and len(live.seen) == len(live.applied) + len(live.pending)
    assert len(live.folded) == 28 and not live.tickets


def test_an_open_ticket_cycle_costs_at_most_a_kibibyte() -> None:
    network = LiveNetwork({"EXP-1": ExporterRegistration.model_validate(registration("EXP-1"))}, POLICY)
    start = utc("2026-03-01T00:00:00Z")
    opened = [EVENT_LINE.validate_python(ticket(f"e-{n:06d}", "opened", (start + timedelta(seconds=n)).isoformat(),
                                                ticket_id=f"T-{n:06d}", exporter="EXP-1"))
              for n in range(4_000)]
    warm, measured = opened[:1_000], opened[1_000:]
    for line in warm:
        network.add(to_micros(line.occurred_at), line)
    clock = to_micros(warm[-1].occurred_at)
    network.flush(clock, clock)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for line in measured:
        network.add(to_micros(line.occurred_at), line)
    clock = to_micros(measured[-1].occurred_at)
    network.flush(clock, clock)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    per_cycle = sum(stat.size_diff for stat in after.compare_to(before, "filename")) / len(measured)
    print(f"{per_cycle:,.0f} bytes per open ticket cycle (its events kept within the horizon included)")
    assert per_cycle <= 1024


def _daily_parts_episodes(days: int) -> list[dict[str, Any]]:
    """Each day P2 runs out at 10:00 (a parts breach: 1 of 10 parts stocked) and is restocked at
    14:00 (resolved), with the outlet's heartbeats moving the history on."""
    first = utc("2026-03-01T00:00:00Z")
    reports = []
    for day in range(days):
        for hour, quantity in ((9, 1), (10, 0), (14, 1)):
            at = (first + timedelta(days=day, hours=hour)).isoformat()
            reports.append(stock(f"s-{day}-{hour}", "D1", at, {"P1": 1, "P2": quantity}, exporter="EXP-1"))
    records = [*_heartbeats("2026-03-01T00:00:00Z", days), *reports]
    return sorted(records, key=lambda r: utc(r["occurred_at"]))


def test_state_alerts_resolved_before_the_oldest_checkpoint_fold_away_and_a_takeover_retracts_none() -> None:
    days = 30
    network = _one_exporter()
    as_of = to_micros(utc("2026-03-01T00:00:00Z")) + days * 24 * HOUR
    published = _judge_in_order(network, _daily_parts_episodes(days), as_of, flush_every=5)
    live = network.exporters["EXP-1"]
    episodes = {m["alert_id"] for m in published if m["obligation"] == "parts_inventory"}
    resolved = {a for a, m in final_alerts(published).items()
                if m["obligation"] == "parts_inventory" and m["status"] == "resolved"}
    assert len(episodes) == days + 1 and resolved == episodes  # and the first night, before any stock

    # a 24-hour horizon: the engine, its checkpoints and what was published keep a day or two of
    # episodes; the rest is handed to the worker to delete from its table of published alerts
    kept = [a for a in live.engine.state_alerts() if a.obligation.value == "parts_inventory"]
    assert 0 < len(kept) <= 3
    assert all(len(c.engine.state_alerts()) <= 3 for c in live.checkpoints)
    assert len([a for a in live.published if a in episodes]) <= 3
    assert set(live.forgotten) | {a.alert_id for a in kept} == episodes

    # taken over from its checkpoint, with the table of published alerts as deleted (forgotten
    # entries gone) and as a worker killed before the deletions reached it (all still there)
    everything = {**final_alerts(published), **live.published}
    for table in (dict(live.published), everything):
        restored = LiveNetwork(network.registry, POLICY, horizon=network.horizon, checkpoint_every=10)
        restored.adopt(checkpoint.thaw(checkpoint.freeze(live), network.registry, POLICY, table))
        # its next event has every state alert compared with what was published
        beat = EVENT_LINE.validate_python(outlet("o-next", "O-1", to_datetime(as_of).isoformat(), exporter="EXP-1"))
        assert restored.add(as_of, beat)
        assert restored.flush(as_of, as_of) == []  # nothing retracted, nothing published again
        assert set(restored.exporters["EXP-1"].published) == set(live.published)
