"""Workers fail, nothing is lost: kill -9 mid-stream, on the real broker, with tens of thousands of events.

1. One worker killed halfway through the stream and started again under its instance id (a new
   process, another web port; static membership): the alerts by id with their final status
   (retracted ones aside), field by field, and the final figures equal those of `evaluate` for
   the same events and "now" (where an uninterrupted worker ends too).
2. Two workers in one group, one killed mid-stream: the survivor takes all the partitions and
   publishes exactly what `evaluate` computes.
3. The input's first records come while a second worker joins the group: none is lost in the
   rebalance.

Each test prints its figures (events, alerts, timings, messages published again after the crash);
timings are reported, never asserted.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from monitor.simulation.network import NetworkSpec, events, registrations
from monitor.stream.topics import ensure_topics
from tests.streaming import (
    Record,
    WorkerProcess,
    evaluate_json,
    final_alerts,
    metric,
    produce,
    read_topic,
    records_of_lines,
    unique_names,
)

# 4 exporters (one a distributor), 3 markets each, 14 days: about 30,000 events
SPEC = NetworkSpec(seed=20261124, exporters=4, markets_per_exporter=3, start=date(2026, 3, 1), days=14)
SETTLE_TIMEOUT = 300.0  # generous: other tests may share the two cores
READY_TIMEOUT = 120.0
IDLE = 4.0  # "settled": the expected alerts stand and nothing new came for this long
ALERT_FIELDS = ("exporter_id", "market", "obligation", "severity", "status", "subject", "opened_at", "resolved_at",
                "policy_version", "renewal_relevant", "accountable", "evidence")
FIGURE_PARTS = ("response_48h", "parts_inventory", "emergency_coverage", "network_size", "as_of")
SLICES, PACE = SPEC.days, 0.4  # records produced a simulated day at a time, 0.4 s apart
PARTITIONS = 8  # the workers' default (MONITOR_PARTITIONS)
CONSUMED_LINE = re.compile(r'^monitor_events_consumed_total\{topic="[^"]*"\} ([0-9.e+]+)$', re.MULTILINE)


@dataclass(frozen=True)
class Scenario:
    """The synthetic stream, its registry file and what `evaluate` says of it."""

    lines: list[bytes]
    registry: Path
    expected: dict[str, Any]

    @property
    def as_of(self) -> str:
        return str(self.expected["as_of"])

    @property
    def wanted(self) -> dict[str, str]:
        """alert_id -> final status, per `evaluate`."""
        return {a["alert_id"]: a["status"] for a in self.expected["alerts"]}

    def figures(self) -> dict[str, dict[str, Any]]:
        """`exporter:market` -> the figures a ComplianceSnapshot carries, per `evaluate`."""
        networks = {e["exporter_id"]: e["network_size"] for e in self.expected["exporters"]}
        return {f"{f['exporter_id']}:{f['market']}": {"response_48h": f["response_48h"],
                                                      "parts_inventory": f["parts_inventory"],
                                                      "emergency_coverage": f["emergency_coverage"],
                                                      "network_size": networks[f["exporter_id"]],
                                                      "as_of": self.as_of}
                for f in self.expected["figures"]}

    def env(self) -> dict[str, str]:
        return {"MONITOR_AS_OF": self.as_of, "MONITOR_REGISTRY": str(self.registry)}


def make_scenario(folder: Path, spec: NetworkSpec) -> Scenario:
    registry = folder / "registry.json"
    registry.write_bytes(orjson.dumps(registrations(spec)))
    lines = [orjson.dumps(event) for event in events(spec)]
    events_file = folder / "events.jsonl"
    events_file.write_bytes(b"\n".join(lines) + b"\n")
    expected = evaluate_json([events_file], "--registry", str(registry))  # the last --registry wins
    assert not expected["rejected"]
    return Scenario(lines, registry, expected)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    made = make_scenario(tmp_path_factory.mktemp("faults"), SPEC)
    assert len(made.lines) >= 30_000
    return made


# ---- helpers --------------------------------------------------------------------------------------


def judged(worker: WorkerProcess) -> float:
    """Input events the worker's judging stage has taken (each judged once, or found a duplicate)."""
    return (metric(worker, "monitor_event_processing_lag_seconds_count")
            + metric(worker, "monitor_events_duplicate_total"))


def consumed(worker: WorkerProcess) -> int | None:
    """Input messages the worker has read (monitor_events_consumed_total over all topics), None if it
    does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}/metrics", timeout=1) as answer:
            text = answer.read().decode()
    except OSError:
        return None
    return int(sum(float(count) for count in CONSUMED_LINE.findall(text)))


class Producer(threading.Thread):
    """Produces the records in the background, in event-time order, a slice at a time (about a
    simulated day, PACE seconds apart) as a live network would, so that a worker can be killed
    while they still arrive and after it has published some of what the first slices showed."""

    def __init__(self, bootstrap: str, records: Sequence[Record]) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.records = bootstrap, records
        self.error: BaseException | None = None
        self.seconds = 0.0

    def run(self) -> None:
        started = time.monotonic()
        size = -(-len(self.records) // SLICES)
        try:
            for start in range(0, len(self.records), size):
                asyncio.run(produce(self.bootstrap, self.records[start : start + size]))
                time.sleep(PACE)
        except BaseException as exc:  # reported by the test thread
            self.error = exc
        self.seconds = time.monotonic() - started

    def finish(self) -> float:
        self.join(timeout=120)
        assert not self.is_alive(), "producing did not finish in 120 s"
        assert self.error is None, repr(self.error)
        return self.seconds


def kill_halfway(victim: WorkerProcess, counted: Sequence[WorkerProcess], total: int,
                 timeout: float = SETTLE_TIMEOUT) -> int:
    """Kill -9 `victim` once the workers in `counted` have read about half of `total` input messages;
    returns how many they had read."""
    deadline = time.monotonic() + timeout
    read = 0
    while time.monotonic() < deadline:
        counts = [consumed(worker) for worker in counted]
        read = sum(c or 0 for c in counts)
        if read >= total // 2:
            break
        assert victim.process is not None and victim.process.poll() is None, victim.tail()
        time.sleep(0.05)
    victim.kill()
    return read


def standing_of(messages: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {k: m for k, m in final_alerts(messages).items() if m["status"] != "retracted"}


def wait_settled(bootstrap: str, topic: str, wanted: dict[str, str]) -> tuple[list[dict[str, Any]], float]:
    """Every alert message once the standing alerts equal `wanted` and nothing new came for IDLE
    seconds (or after SETTLE_TIMEOUT); and when the last message came (monotonic)."""
    records, done = wait_settled_records(bootstrap, topic, wanted)
    return [orjson.loads(record.value) for record in records], done


def wait_settled_records(bootstrap: str, topic: str, wanted: dict[str, str]) -> tuple[list[Any], float]:
    """As `wait_settled`, but the records themselves (partition and offset with the message)."""

    def settled(records: list[Any]) -> bool:
        standing = standing_of([orjson.loads(record.value) for record in records])
        return {k: m["status"] for k, m in standing.items()} == wanted

    records = asyncio.run(read_topic(bootstrap, topic, until=settled, idle=IDLE, timeout=SETTLE_TIMEOUT, raw=True))
    return records, time.monotonic() - IDLE


def final_figures(bootstrap: str, topic: str, wanted: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The latest ComplianceSnapshot per `exporter:market` (its figures only), once they equal `wanted`
    and nothing new came for a second (or after a minute)."""

    def latest(snapshots: list[Any]) -> dict[str, dict[str, Any]]:
        return {f"{s['exporter_id']}:{s['market']}": {part: s[part] for part in FIGURE_PARTS} for s in snapshots}

    snapshots = asyncio.run(read_topic(bootstrap, topic, until=lambda s: latest(s) == wanted, idle=1.0,
                                       timeout=60))
    return latest(snapshots)


def describe_difference(messages: list[dict[str, Any]], scenario: Scenario) -> str:
    """What differs from `evaluate`, alert by alert: missing, extra, other status."""
    standing = standing_of(messages)
    wanted = scenario.wanted
    by_id = {a["alert_id"]: a for a in scenario.expected["alerts"]}
    missing = sorted(wanted.keys() - standing.keys())
    extra = sorted(standing.keys() - wanted.keys())
    other = sorted(k for k in wanted.keys() & standing.keys() if standing[k]["status"] != wanted[k])
    lines = [f"{len(missing)} missing, {len(extra)} extra, {len(other)} with another status "
             f"(of {len(wanted)} expected)"]
    lines += [f"  missing {k}: {by_id[k]['obligation']} {by_id[k]['exporter_id']} {by_id[k]['market']} "
              f"{by_id[k]['subject']} {by_id[k]['status']}" for k in missing[:15]]
    lines += [f"  extra {k}: {standing[k]['obligation']} {standing[k]['exporter_id']} {standing[k]['market']} "
              f"{standing[k]['subject']} {standing[k]['status']}" for k in extra[:15]]
    lines += [f"  {k}: {standing[k]['obligation']} {standing[k]['subject']} is {standing[k]['status']}, "
              f"evaluate says {wanted[k]}" for k in other[:15]]
    # what was published of each, in order: which clock raised it, when, and with what evidence
    for k in [*missing, *extra, *other][:5]:
        lines.append(f"  messages of {k}:")
        lines += [f"    {m['status']} {m['severity']} clock={m.get('clock')} raised_at={m['raised_at']} "
                  f"opened_at={m['opened_at']} evidence={orjson.dumps(m.get('evidence')).decode()}"
                  for m in messages if m.get("alert_id") == k]
    return "\n".join(lines)


def check_alerts(messages: list[dict[str, Any]], scenario: Scenario, who: str) -> dict[str, dict[str, Any]]:
    """The standing alerts equal `evaluate`'s, field by field (but when the monitor noticed them)."""
    standing = standing_of(messages)
    assert {k: m["status"] for k, m in standing.items()} == scenario.wanted, (
        f"{who}: " + describe_difference(messages, scenario))
    by_id = {a["alert_id"]: a for a in scenario.expected["alerts"]}
    for alert_id, message in standing.items():
        for name in ALERT_FIELDS:
            assert message[name] == by_id[alert_id][name], (who, alert_id, name)
    return standing


def check_figures(figures: dict[str, dict[str, Any]], scenario: Scenario, who: str) -> None:
    wanted = scenario.figures()
    assert figures.keys() == wanted.keys(), who
    for key, figure in figures.items():
        for part in FIGURE_PARTS:
            assert figure[part] == wanted[key][part], (who, key, part)


def alive(*workers: WorkerProcess) -> None:
    for worker in workers:
        assert worker.process is not None and worker.process.poll() is None, worker.tail()


# ---- the tests ------------------------------------------------------------------------------------


def test_a_worker_killed_halfway_and_restarted_ends_where_evaluate_does(
        kafka_bootstrap: str, tmp_path: Path, scenario: Scenario) -> None:
    total = len(scenario.lines)
    wanted = scenario.wanted
    topics = dict(Counter(orjson.loads(line)["topic"] for line in scenario.lines))
    print(f"\n[kill -9 and restart] events {total:,} ({topics})"
          f"\n  alerts expected by evaluate: {len(wanted):,} "
          f"({dict(Counter(a['obligation'] for a in scenario.expected['alerts']))}); "
          f"figures for {len(scenario.figures())} exporter:market")

    # the same events, with the worker killed halfway and another started in its group
    names = unique_names()
    # started again under its instance id (static membership), as an operator's service manager restarts it
    env = {**scenario.env(), "MONITOR_INSTANCE_ID": "worker-1"}
    first = WorkerProcess(kafka_bootstrap, names, tmp_path, env=env, name="killed").start()
    try:
        first.wait_ready(READY_TIMEOUT)
        producer = Producer(kafka_bootstrap, records_of_lines(scenario.lines, names))
        started = time.monotonic()
        producer.start()
        read_at_kill = kill_halfway(first, [first], total)
        kill_seconds = time.monotonic() - started
        produce_seconds = producer.finish()
    finally:
        first.kill()
    at_kill = asyncio.run(read_topic(kafka_bootstrap, names.alerts, idle=2.0, raw=True))
    before = [orjson.loads(record.value) for record in at_kill]
    ends_at_kill = Counter({record.partition: record.offset + 1 for record in at_kill})  # offsets ascend
    print(f"  killed run: killed {kill_seconds:.1f} s after producing began, with {read_at_kill:,} of {total:,} "
          f"input messages read ({read_at_kill / total:.0%}); producing took {produce_seconds:.1f} s; "
          f"{len(before):,} alert messages published before the kill")

    second = WorkerProcess(kafka_bootstrap, names, tmp_path, app_id=first.app_id, env=env, name="restarted")
    with second:
        restarted = time.monotonic()
        second.wait_ready(READY_TIMEOUT)
        records, done = wait_settled_records(kafka_bootstrap, names.alerts, wanted)
        restart_seconds = done - restarted
        figures = final_figures(kafka_bootstrap, names.compliance, scenario.figures())
        second_read = consumed(second)
        alive(second)

    # what the restarted worker sent: the records past each partition's end at the kill
    messages = [orjson.loads(record.value) for record in records]
    after = [m for m, record in zip(messages, records, strict=True) if record.offset >= ends_at_kill[record.partition]]
    seen_before = Counter((m["alert_id"], m["status"]) for m in before)
    republished = sum(1 for m in after if seen_before[(m["alert_id"], m["status"])])
    print(f"  restart: ready and settled {restart_seconds:.1f} s after the new worker started, having read "
          f"{second_read or 0:,} input messages; {len(after):,} alert messages after the restart, {republished:,} "
          f"of them republished (same alert id and status as before the kill)")

    # an uninterrupted worker ends where `evaluate` does (tests/test_stream_agrees_with_evaluate.py): so must this one
    check_alerts(messages, scenario, "killed and restarted run")
    check_figures(figures, scenario, "killed and restarted run")


def test_two_workers_one_killed_the_other_takes_its_partitions(
        kafka_bootstrap: str, tmp_path: Path, scenario: Scenario) -> None:
    total = len(scenario.lines)
    names = unique_names()
    app_id = f"{names.prefix}monitor"
    survivor = WorkerProcess(kafka_bootstrap, names, tmp_path, app_id=app_id, env=scenario.env(), name="survivor")
    victim = WorkerProcess(kafka_bootstrap, names, tmp_path, app_id=app_id, env=scenario.env(), name="victim")
    assert survivor.web_port != victim.web_port
    with survivor, victim:
        survivor.wait_ready(READY_TIMEOUT)
        victim.wait_ready(READY_TIMEOUT)
        shared = _wait_for(lambda: _split(survivor, victim), timeout=120)
        assert shared is not None, (survivor.health(), victim.health(), victim.tail())

        producer = Producer(kafka_bootstrap, records_of_lines(scenario.lines, names))
        started = time.monotonic()
        producer.start()
        read_at_kill = kill_halfway(victim, [survivor, victim], total)
        killed = time.monotonic()
        kill_seconds = killed - started

        def took_all() -> list[int] | None:
            health = survivor.health() or {}
            return health.get("partitions") if len(health.get("partitions") or ()) == PARTITIONS else None

        taken = _wait_for(took_all, timeout=SETTLE_TIMEOUT)
        takeover_seconds = time.monotonic() - killed
        assert taken == list(range(PARTITIONS)), (survivor.health(), survivor.tail())
        produce_seconds = producer.finish()
        messages, done = wait_settled(kafka_bootstrap, names.alerts, scenario.wanted)
        settled_seconds = done - killed
        figures = final_figures(kafka_bootstrap, names.compliance, scenario.figures())
        survivor_read = consumed(survivor)
        alive(survivor)

    print(f"\n[two workers, one killed] events {total:,}; alerts expected {len(scenario.wanted):,}"
          f"\n  partitions before: survivor {shared[0]}, victim {shared[1]}"
          f"\n  victim killed {kill_seconds:.1f} s after producing began, with {read_at_kill:,} of {total:,} "
          f"input messages read by the two ({read_at_kill / total:.0%}); producing took {produce_seconds:.1f} s"
          f"\n  survivor held all {PARTITIONS} partitions {takeover_seconds:.1f} s after the kill; "
          f"settled {settled_seconds:.1f} s after the kill, having read {survivor_read or 0:,} input messages in "
          f"all; {len(messages):,} alert messages in all, "
          f"{len(messages) - len(final_alerts(messages)):,} beyond one per alert")

    check_alerts(messages, scenario, "survivor")
    check_figures(figures, scenario, "survivor")


def test_records_produced_while_a_worker_joins_are_all_judged(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    """The input topics get their first records just as a second worker joins the group: the
    first worker's partitions are revoked and assigned again, with nothing committed on them yet.
    Every record is judged (Faust drops the messages it was handing over when the rebalance
    suspends its flow, and seeks back only to a committed offset)."""
    spec = NetworkSpec(seed=20261203, exporters=4, markets_per_exporter=3, start=date(2026, 3, 1), days=3)
    joining = make_scenario(tmp_path, spec)
    names = unique_names()
    app_id = f"{names.prefix}monitor"
    revoking = re.compile(rf"Revoking previously assigned partitions frozenset\(.*\) for group {re.escape(app_id)}$",
                          re.MULTILINE)
    first = WorkerProcess(kafka_bootstrap, names, tmp_path, app_id=app_id, env=joining.env(), name="first")
    second = WorkerProcess(kafka_bootstrap, names, tmp_path, app_id=app_id, env=joining.env(), name="joining")
    with first:
        first.wait_ready(READY_TIMEOUT)
        with second:
            rebalancing = _wait_for(lambda: revoking.search(first.log_path.read_text(errors="replace")),
                                    timeout=READY_TIMEOUT)
            assert rebalancing is not None, second.tail()
            started = time.monotonic()
            asyncio.run(produce(kafka_bootstrap, records_of_lines(joining.lines, names)))
            produced = time.monotonic() - started
            second.wait_ready(READY_TIMEOUT)
            messages, done = wait_settled(kafka_bootstrap, names.alerts, joining.wanted)
            shared = _split(first, second)
            read = (consumed(first) or 0) + (consumed(second) or 0)
            alive(first, second)
    print(f"\n[a worker joins] events {len(joining.lines):,}, produced in {produced:.1f} s from the first worker's "
          f"revocation; settled {done - started:.1f} s after; partitions then {shared}; {read:,} input messages "
          f"read by the two; {len(messages):,} alert messages for {len(joining.wanted):,} expected alerts")
    check_alerts(messages, joining, "both workers")


def _split(*workers: WorkerProcess) -> list[list[int]] | None:
    """The partitions of each worker once every worker has some."""
    held = [(worker.health() or {}).get("partitions") or [] for worker in workers]
    return held if all(held) else None


def _wait_for(condition: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.2)
    return None


def test_a_takeover_after_a_long_history_judges_again_only_the_input_since_the_checkpoint(
        kafka_bootstrap: str, tmp_path: Path, scenario: Scenario) -> None:
    """The history is judged and checkpointed; then the last events come, and the worker is killed -9
    before a checkpoint covers them (most of the time: the test holds either way). The worker taking
    over loads the checkpoints and judges again at most those last events, and ends where `evaluate`
    does."""
    tail = 1_000
    history, last = scenario.lines[:-tail], scenario.lines[-tail:]
    names = unique_names()
    env = {**scenario.env(), "MONITOR_CHECKPOINT_SECONDS": "5"}
    first = WorkerProcess(kafka_bootstrap, names, tmp_path, env=env, name="checkpointed").start()
    try:
        first.wait_ready(READY_TIMEOUT)
        asyncio.run(produce(kafka_bootstrap, records_of_lines(history, names)))
        covered = _wait_for(lambda: judged(first) >= len(history)
                            and metric(first, "monitor_events_since_checkpoint") == 0
                            and metric(first, "monitor_checkpoints_written_total") > 0, timeout=SETTLE_TIMEOUT)
        assert covered, f"the history was not checkpointed: {first.tail()}"
        checkpoints = metric(first, "monitor_checkpoints_written_total")
        asyncio.run(produce(kafka_bootstrap, records_of_lines(last, names)))
        read = _wait_for(lambda: consumed(first) == len(scenario.lines), timeout=SETTLE_TIMEOUT)
        assert read, first.tail()
        since = _wait_for(lambda: metric(first, "monitor_events_since_checkpoint"), timeout=10) or 0
        alive(first)
    finally:
        first.kill()

    second = WorkerProcess(kafka_bootstrap, names, tmp_path, app_id=first.app_id, env=env, name="taking over")
    with second:
        started = time.monotonic()
        second.wait_ready(READY_TIMEOUT)
        ready = time.monotonic() - started
        messages, done = wait_settled(kafka_bootstrap, names.alerts, scenario.wanted)
        rejudged = metric(second, "monitor_takeover_events_rejudged_total")
        figures = final_figures(kafka_bootstrap, names.compliance, scenario.figures())
        assert _wait_for(lambda: metric(second, "monitor_events_since_checkpoint") == 0, timeout=60), second.tail()
        alive(second)
    # the table holds the checkpoints and each partition's floor, never an envelope (read from the topic)
    table: dict[bytes, bytes | None] = {}
    for record in asyncio.run(read_topic(kafka_bootstrap, f"{first.app_id}-exporters-changelog", idle=2.0,
                                         raw=True)):
        table[record.key] = record.value
    floors = [key for key in table if key.split(b"|")[1:] == [b"", b"floor"]]
    others = [key for key in table if key not in floors and not key.split(b"|")[2].startswith(b"c")]
    print(f"\n[takeover after a checkpointed history] history {len(history):,} events, checkpointed "
          f"({checkpoints:.0f} checkpoints); then {tail:,} more, {since:.0f} of them judged and not yet checkpointed "
          f"at the kill\n  the worker taking over was ready {ready:.1f} s after it started and settled "
          f"{done - started:.1f} s after; it judged again {rejudged:.0f} events\n  the table holds "
          f"{len(table) - len(floors) - len(others)} checkpoint chunks and the floors of {len(floors)} partitions")
    assert others == [], "the table holds checkpoints and floors only"
    assert floors, "each partition's floor is written"
    assert rejudged <= tail, "only the events since the checkpoint are judged again"
    try:
        check_alerts(messages, scenario, "taking over")
    except AssertionError as exc:  # what both workers said of the takeover and of anything unusual
        said = [f"{w.name}: {line}" for w in (first, second) for line in w.tail(5000).splitlines()
                if line[:2].isdigit() and (" INFO monitor." in line or " WARNING " in line or " ERROR " in line)
                and "mode.timers" not in line]
        raise AssertionError(f"{exc}\n" + "\n".join(said[-60:])) from None
    check_figures(figures, scenario, "taking over")


def test_a_worker_joining_while_a_backlog_is_read_leaves_no_clock_held(
        kafka_bootstrap: str, tmp_path: Path, scenario: Scenario) -> None:
    """The whole history waits on the topics; a second worker joins while the first is reading it,
    so the first's intake gives up input partitions it had not read to their end. What it saw of
    them must not hold the watermark it stamps afterwards (its exporters' clocks would stay at the
    event time those partitions had reached, and their later deadlines never pass): both workers
    together end where `evaluate` does."""
    names = unique_names()
    app_id = f"{names.prefix}monitor"
    revoking = re.compile(rf"Revoking previously assigned partitions frozenset\(.*\) for group "
                          rf"{re.escape(app_id)}-intake$", re.MULTILINE)
    asyncio.run(ensure_topics(kafka_bootstrap, names))
    asyncio.run(produce(kafka_bootstrap, records_of_lines(scenario.lines, names)))
    first = WorkerProcess(kafka_bootstrap, names, tmp_path, app_id=app_id, env=scenario.env(), name="first")
    second = WorkerProcess(kafka_bootstrap, names, tmp_path, app_id=app_id, env=scenario.env(), name="joining")
    with first:
        assert _wait_for(lambda: consumed(first), timeout=READY_TIMEOUT), first.tail()
        with second:
            assert _wait_for(lambda: revoking.search(first.log_path.read_text(errors="replace")),
                             timeout=READY_TIMEOUT), first.tail()
            read_when_revoked = consumed(first) or 0
            started = time.monotonic()
            messages, done = wait_settled(kafka_bootstrap, names.alerts, scenario.wanted)
            alive(first, second)
    print(f"\n[a worker joins a backlog] events {len(scenario.lines):,}; the first worker had read "
          f"{read_when_revoked:,} when its intake's partitions were revoked; settled {done - started:.1f} s after")
    check_alerts(messages, scenario, "both workers")
