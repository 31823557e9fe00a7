"""`monitor simulate`: the synthetic network's records, produced onto a real broker and read back."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from uuid import uuid4

import orjson
import pytest
from pydantic import BaseModel, ValidationError

from monitor.contracts.events import OutletStatusEvent, PartsStockReport, ServiceTicketEvent
from monitor.contracts.registry import ExporterRegistration
from monitor.simulation.network import NetworkSpec, events, registrations
from monitor.simulation.produce import (
    KEY_FIELDS,
    MALFORMED_KINDS,
    Pacer,
    SimulatedRecord,
    SimulationPlan,
    period_ending_today,
    produce,
    simulated_records,
)

MODELS: dict[str, type[BaseModel]] = {
    "service-tickets": ServiceTicketEvent, "parts-stock": PartsStockReport, "outlet-status": OutletStatusEvent,
    "registry": ExporterRegistration,
}
SHORT_NAMES = tuple(MODELS)

# small: a couple of days of three exporters, a few hundred records
SMALL = NetworkSpec(seed=7, exporters=3, markets_per_exporter=2, outlets_per_market=4, tickets_per_day_per_market=6,
                    catalogue_size=12, start=date(2026, 3, 1), days=2, grey_market_share=0.05)


def _prefix() -> str:
    return f"t{uuid4().hex[:8]}."


async def _consume_all(bootstrap: str, prefix: str, partitions_seen: dict[bytes, set[int]] | None = None,
                       ) -> dict[str, list[tuple[bytes, bytes]]]:
    """Every record on the four input topics, (key, value) in partition order, by short name;
    the partitions each key was found in go to `partitions_seen`."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                max_partition_fetch_bytes=4 * 1024 * 1024, fetch_max_bytes=16 * 1024 * 1024)
    await consumer.start()
    try:
        partitions = []
        for short in SHORT_NAMES:
            found = await consumer._client._wait_on_metadata(prefix + short)  # the topics exist by now
            partitions += [TopicPartition(prefix + short, p) for p in sorted(found)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        got: dict[str, list[tuple[bytes, bytes]]] = {short: [] for short in SHORT_NAMES}
        remaining = {tp for tp in partitions if ends[tp] > 0}
        async with asyncio.timeout(30):
            while remaining:
                batches = await consumer.getmany(*remaining, timeout_ms=500)
                for tp, messages in batches.items():
                    got[tp.topic.removeprefix(prefix)] += [(m.key, m.value) for m in messages]
                    if partitions_seen is not None:
                        for message in messages:
                            partitions_seen.setdefault(message.key, set()).add(tp.partition)
                    if messages and messages[-1].offset + 1 >= ends[tp]:
                        remaining.discard(tp)
        return got
    finally:
        await consumer.stop()


def _by_topic(records: list[SimulatedRecord]) -> dict[str, list[tuple[bytes, bytes]]]:
    grouped: dict[str, list[tuple[bytes, bytes]]] = {short: [] for short in SHORT_NAMES}
    for record in records:
        grouped[record.topic].append((record.key, record.value))
    return grouped


def _per_key(pairs: list[tuple[bytes, bytes]]) -> dict[bytes, list[bytes]]:
    keyed: dict[bytes, list[bytes]] = {}
    for key, value in pairs:
        keyed.setdefault(key, []).append(value)
    return keyed


# ---- the records, without a broker ----------------------------------------------------------------


def test_same_plan_same_records_byte_for_byte() -> None:
    plan = SimulationPlan(SMALL, malformed_share=0.05)
    first, second = list(simulated_records(plan)), list(simulated_records(plan))
    assert first == second
    assert first != list(simulated_records(SimulationPlan(NetworkSpec(**{**SMALL.__dict__, "seed": 8}),
                                                          malformed_share=0.05)))


def test_registrations_first_then_events_keyed_per_contract_without_topic_field() -> None:
    records = list(simulated_records(SimulationPlan(SMALL, malformed_share=0)))
    registry = [r for r in records if r.topic == "registry"]
    assert records[: len(registry)] == registry
    assert [orjson.loads(r.value) for r in registry] == registrations(SMALL)
    for record in registry:
        assert record.key == ExporterRegistration.model_validate_json(record.value).exporter_id.encode()
    expected = list(events(SMALL))
    rest = records[len(registry):]
    assert len(rest) == len(expected)
    for record, event in zip(rest, expected, strict=True):
        assert record.topic == event.pop("topic")
        assert record.key == event[KEY_FIELDS[record.topic]].encode()
        assert record.value == orjson.dumps(event)
        assert b'"topic"' not in record.value
        assert record.occurred_at == datetime.fromisoformat(event["occurred_at"]).timestamp()
    assert [r.occurred_at for r in rest] == sorted(r.occurred_at for r in rest)


def test_without_registration_and_with_a_limit() -> None:
    records = list(simulated_records(SimulationPlan(SMALL, register=False, limit=50)))
    assert len(records) == 50
    assert all(r.topic != "registry" for r in records)
    assert records == list(simulated_records(SimulationPlan(SMALL, register=False)))[:50]


def test_bad_messages_at_the_share_asked_of_every_kind_and_the_good_ones_unchanged() -> None:
    spec = NetworkSpec(seed=11, exporters=3, days=3, start=date(2026, 3, 1))
    bad_plan, clean_plan = SimulationPlan(spec, malformed_share=0.05), SimulationPlan(spec, malformed_share=0)
    records, clean = list(simulated_records(bad_plan)), list(simulated_records(clean_plan))
    assert len(records) == len(clean)
    kinds: Counter[str] = Counter()
    for record, original in zip(records, clean, strict=True):
        assert (record.topic, record.key, record.occurred_at) == (original.topic, original.key, original.occurred_at)
        model = MODELS[record.topic]
        if record.malformed is None:
            assert record.value == original.value  # a good event is the one it would be with no bad ones
            model.model_validate_json(record.value)
            continue
        kinds[record.malformed] += 1
        assert record.value != original.value
        assert len(record.value) <= 1_000_000
        with pytest.raises(ValidationError):
            model.model_validate_json(record.value)
    events_made = sum(r.topic != "registry" for r in records)
    assert 0.04 < sum(kinds.values()) / events_made < 0.06
    assert set(kinds) == set(MALFORMED_KINDS)


def test_each_kind_of_bad_message_is_what_its_name_says() -> None:
    spec = NetworkSpec(seed=11, exporters=3, days=3, start=date(2026, 3, 1))
    records = simulated_records(SimulationPlan(spec, malformed_share=0.05))
    clean = simulated_records(SimulationPlan(spec, malformed_share=0))
    for record, original in zip(records, clean, strict=True):
        kind, value = record.malformed, record.value
        if kind is None:
            continue
        if kind == "binary":
            with pytest.raises(UnicodeDecodeError):
                value.decode()
            continue
        value.decode()
        if kind == "not_json":
            with pytest.raises(orjson.JSONDecodeError):
                orjson.loads(value)
            continue
        document, before = orjson.loads(value), orjson.loads(original.value)
        if kind == "json_array":
            assert document == [before]
            continue
        changed = {name for name in before if document.get(name) != before[name]}
        if kind == "missing_field":
            assert len(set(before) - set(document)) == 1 and len(document) == len(before) - 1
        elif kind == "wrong_type":
            assert len(changed) == 1
            name = changed.pop()
            if name == "lines":
                assert any(isinstance(line["quantity_on_hand"], str) for line in document["lines"])
            else:
                assert type(document[name]) is not type(before[name])
        elif kind == "naive_timestamp":
            assert changed == {"occurred_at"}
            assert datetime.fromisoformat(document["occurred_at"]).tzinfo is None
        elif kind == "bad_vin":
            assert changed == {"vin"}
            vin = document["vin"]
            assert len(vin) != 17 or set(vin) & set("IOQ") or vin != vin.upper()
        elif kind == "oversized":
            assert len(changed) == 1 and 256 * 1024 <= len(value) <= 1_000_000
        elif kind == "unknown_market":
            assert changed == {"market"} and document["market"] in {"UK", "EU", "XK", "AN", "ZZ"}
        else:
            raise AssertionError(f"untested kind {kind}")


def test_grey_market_tickets_are_flagged_by_the_exporters_own_brands() -> None:
    plan = SimulationPlan(SMALL, malformed_share=0)
    own = {reg["exporter_id"]: {w for brand in reg["brands"] for w in brand["wmi"]} for reg in registrations(SMALL)}
    flagged = 0
    for record in simulated_records(plan):
        if record.topic != "service-tickets":
            assert not record.grey_market
            continue
        ticket = orjson.loads(record.value)
        grey = ticket["type"] == "opened" and ticket["vin"][:3] not in own[ticket["exporter_id"]]
        assert record.grey_market == grey
        flagged += grey
    assert flagged > 0


def test_the_default_period_ends_today() -> None:
    assert period_ending_today(30, today=date(2026, 3, 30)) == date(2026, 3, 1)
    assert period_ending_today(1, today=date(2026, 3, 30)) == date(2026, 3, 30)
    assert period_ending_today(7) == datetime.now(UTC).date() - timedelta(days=6)


def test_a_plan_refuses_nonsense() -> None:
    for bad in ({"rate": 0}, {"rate": -5}, {"malformed_share": 1.5}, {"limit": -1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            SimulationPlan(SMALL, **bad)  # type: ignore[arg-type]


# ---- pacing, on a fake clock ------------------------------------------------------------------------


def _paced_run(pacer: Pacer, seconds: float, *, oversleep: float = 0.0, send_cost: float = 2e-6,
               stall_at: float | None = None, stall: float = 0.0) -> tuple[list[float], int]:
    """Drive `pacer` as `produce` does, on a fake clock; the send times and the number of sleeps."""
    now, sent, sleeps, times = 1000.0, 0, 0, []
    stalled = False
    while now < 1000.0 + seconds:
        if stall_at is not None and not stalled and now >= 1000.0 + stall_at:
            now += stall
            stalled = True
        wait = pacer.delay(sent, now)
        if wait:
            sleeps += 1
            now += wait + oversleep  # sleeping always ends a little late on a real machine
            continue
        times.append(now)
        sent += 1
        now += send_cost
    return times, sleeps


def test_pacer_keeps_the_rate_without_drift_and_sleeps_in_batches() -> None:
    pacer = Pacer(10_000, quantum=0.005)
    times, sleeps = _paced_run(pacer, 10.0, oversleep=0.001)
    assert len(times) == pytest.approx(100_000, rel=0.001)  # late wake-ups do not accumulate
    assert sleeps <= 10.0 / 0.005 * 1.05  # one sleep per quantum, not one per send
    for n in (0, 1, 4999, 50_000, 99_000):
        # never earlier than the schedule allows: n / rate after the first send, less one quantum
        assert times[n] >= times[0] + n / 10_000 - 0.005 - 1e-9


def test_pacer_at_a_slow_rate_sleeps_between_sends() -> None:
    times, sleeps = _paced_run(Pacer(20), 5.0, oversleep=0.003)
    assert len(times) == pytest.approx(100, abs=1)
    assert len(times) - 1 <= sleeps <= len(times)  # one sleep per send
    gaps = [b - a for a, b in pairwise(times)]
    assert min(gaps) > 0.04  # late wake-ups are made up on the next gap, not lost
    assert times[-1] - times[0] == pytest.approx(99 / 20, abs=0.004)


def test_pacer_forgives_a_stall_beyond_its_burst() -> None:
    pacer = Pacer(1000, quantum=0.005, burst=0.1)
    times, _ = _paced_run(pacer, 10.0, stall_at=2.0, stall=5.0)
    after = [t for t in times if t >= 1000.0 + 7.0]
    assert len([t for t in after if t < 1000.0 + 7.0 + 0.001]) <= 1000 * 0.1 + 1  # one burst's worth at once
    assert len(times) == pytest.approx(1000 * (10.0 - 5.0 + 0.1), rel=0.01)  # the stall is not made up


def test_pacer_refuses_a_rate_of_zero() -> None:
    with pytest.raises(ValueError, match="positive"):
        Pacer(0)


# ---- onto the broker and back ---------------------------------------------------------------------


async def test_produced_records_are_the_generated_ones(embedded_bootstrap: str) -> None:
    prefix = _prefix()
    plan = SimulationPlan(SMALL, malformed_share=0.05)
    expected = list(simulated_records(plan))
    stats = await produce(plan, embedded_bootstrap, prefix)
    assert stats.ended == "done" and stats.failed == 0
    partitions: dict[bytes, set[int]] = {}
    got = await _consume_all(embedded_bootstrap, prefix, partitions)
    wanted = _by_topic(expected)
    assert {t: len(v) for t, v in got.items()} == {t: len(v) for t, v in wanted.items()}
    assert dict(stats.per_topic) == {t: len(v) for t, v in wanted.items() if v}
    for short in SHORT_NAMES:
        # every record with its key, and per key in the order made (partitions keep a key's order)
        assert _per_key(got[short]) == _per_key(wanted[short])
    assert stats.malformed == sum(r.malformed is not None for r in expected) > 0
    assert stats.grey_market_tickets == sum(r.grey_market for r in expected) > 0
    events_made = [r for r in expected if r.topic != "registry"]
    assert stats.first_occurred_at == datetime.fromtimestamp(events_made[0].occurred_at, UTC)
    assert stats.last_occurred_at == datetime.fromtimestamp(events_made[-1].occurred_at, UTC)
    assert stats.events_per_second > 0
    # each key in the one partition Kafka's default partitioner (murmur2) gives it
    from aiokafka.partitioner import DefaultPartitioner

    every = sorted({p for found in partitions.values() for p in found})
    assert len(every) > 1
    for key, found in partitions.items():
        assert found == {DefaultPartitioner()(key, every, every)}


async def test_consumed_messages_follow_the_contract(embedded_bootstrap: str) -> None:
    prefix = _prefix()
    plan = SimulationPlan(SMALL, malformed_share=0.05)
    await produce(plan, embedded_bootstrap, prefix)
    got = await _consume_all(embedded_bootstrap, prefix)
    registry = got["registry"]
    assert sorted(key for key, _ in registry) == sorted(r["exporter_id"].encode() for r in registrations(SMALL))
    for key, value in registry:
        assert ExporterRegistration.model_validate_json(value).exporter_id.encode() == key
    good = bad = 0
    for short, key_field in KEY_FIELDS.items():
        for key, value in got[short]:
            try:
                message = MODELS[short].model_validate_json(value)
            except ValidationError:
                bad += 1
                continue
            good += 1
            assert getattr(message, key_field).encode() == key
    assert 0.03 < bad / (good + bad) < 0.07


async def test_a_limit_and_a_rate(embedded_bootstrap: str) -> None:
    prefix = _prefix()
    plan = SimulationPlan(SMALL, rate=1000, limit=300)
    stats = await produce(plan, embedded_bootstrap, prefix)
    assert stats.ended == "limit"
    assert stats.produced == 300
    # pacing can only be slower than asked on a busy machine, never faster
    assert stats.events_per_second <= 1000 * 1.25
    got = await _consume_all(embedded_bootstrap, prefix)
    assert sum(len(v) for v in got.values()) == 300


async def test_stop_ends_the_run_and_flushes_what_was_sent(embedded_bootstrap: str) -> None:
    prefix = _prefix()
    stop = asyncio.Event()
    seen: list[int] = []

    def progress(stats: object) -> None:
        seen.append(1)

    plan = SimulationPlan(SMALL, rate=200)  # about three seconds' worth
    asyncio.get_running_loop().call_later(1.3, stop.set)
    stats = await produce(plan, embedded_bootstrap, prefix, progress=progress, stop=stop)
    assert stats.ended == "stopped"
    assert 0 < stats.produced < len(list(simulated_records(plan)))
    assert 1 <= len(seen) <= 2  # about once a second, and the final figures
    got = await _consume_all(embedded_bootstrap, prefix)
    assert sum(len(v) for v in got.values()) == stats.produced


async def test_without_live_the_run_ends_at_the_present(embedded_bootstrap: str) -> None:
    today = datetime.now(UTC).date()
    spec = NetworkSpec(seed=3, exporters=1, markets_per_exporter=1, outlets_per_market=3,
                       tickets_per_day_per_market=4, start=today, days=1)
    stats = await produce(SimulationPlan(spec), embedded_bootstrap, _prefix())
    assert stats.ended == "now"
    assert stats.last_occurred_at is None or stats.last_occurred_at <= datetime.now(UTC)
    assert stats.per_topic["registry"] == 1  # the registry goes out whatever the time
    assert stats.elapsed_seconds < 10


async def test_live_waits_for_the_clock_until_stopped(embedded_bootstrap: str) -> None:
    today = datetime.now(UTC).date()
    spec = NetworkSpec(seed=3, exporters=1, markets_per_exporter=1, outlets_per_market=3,
                       tickets_per_day_per_market=4, start=today, days=1)
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(1.0, stop.set)
    stats = await produce(SimulationPlan(spec, live=True), embedded_bootstrap, _prefix(), stop=stop)
    assert stats.ended == "stopped"
    assert stats.last_occurred_at is None or stats.last_occurred_at <= datetime.now(UTC)


# ---- the command ----------------------------------------------------------------------------------


def _monitor(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "monitor", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, check=False)


def test_simulate_help_explains_the_options() -> None:
    result = _monitor("simulate", "--help")
    assert result.returncode == 0, result.stderr
    for option in ("--bootstrap", "--topic-prefix", "--seed", "--exporters", "--markets-per-exporter",
                   "--outlets-per-market", "--tickets-per-day", "--days", "--start", "--on-time", "--late",
                   "--never", "--grey-market-share", "--malformed-share", "--rate", "--live", "--limit",
                   "--no-register"):
        assert option in result.stdout


def test_simulate_runs_and_summarises(embedded_bootstrap: str) -> None:
    result = _monitor("simulate", "--limit", "200", "--rate", "0", "--bootstrap", embedded_bootstrap,
                      "--topic-prefix", _prefix(), "--exporters", "2", "--days", "2")
    assert result.returncode == 0, result.stderr
    assert "simulate: limit reached: 200 records" in result.stderr


def test_ctrl_c_stops_a_live_run_cleanly(embedded_bootstrap: str) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "monitor", "simulate", "--live", "--days", "1", "--exporters", "1",
               "--outlets-per-market", "3", "--bootstrap", embedded_bootstrap, "--topic-prefix", _prefix()]
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env) as process:
        assert process.stderr is not None
        assert "simulating" in process.stderr.readline()  # logged just before the signal handlers go in
        time.sleep(1.5)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "simulate: stopped: " in stderr


def test_simulate_refuses_bad_options() -> None:
    result = _monitor("simulate", "--on-time", "0", "--late", "0", "--never", "0", "--bootstrap", "127.0.0.1:1")
    assert result.returncode == 2
    assert "response mix" in result.stderr
