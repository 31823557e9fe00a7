"""Brokers fail, nothing is lost: the three-node Apache Kafka cluster loses a node while events stream in.

1. kill -9 the broker that leads most input partitions, and start it again later;
2. kill -9 the active controller (the KRaft quorum leader), and start it again later;
3. SIGSTOP a broker for longer than the broker session timeout (9 s), then SIGCONT it.

Events are produced at a steady rate across the fault (acks=all, idempotent, a send that fails is
sent again). After each fault: the alerts by id with their final status (retracted ones aside)
equal `evaluate`'s for the same events and "now"; every valid event was judged exactly once (the
worker's processing-lag count equals the number of valid events; a record sent twice is recognised
by its event_id and counted as a duplicate); the history store holds each transition once and every
exporter's chain verifies; the worker never died. Each test prints its figures (seen with -s);
timings are reported, never asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from monitor.history.chain import canonical_json, same_fact
from monitor.history.store import HistoryStore
from monitor.history.tables import Alert
from monitor.stream.topics import TopicNames
from tests.cluster.conftest import active_controller, busiest_leader, partition_leaders
from tests.services.kafka import KafkaCluster, KafkaNode
from tests.streaming import (
    EXAMPLE_EVENTS,
    Record,
    WorkerProcess,
    evaluate_json,
    final_alerts,
    records_of_lines,
    unique_names,
)

PRODUCE_SECONDS = 20.0  # the example's events, spread evenly over this long
TICK = 0.1  # a slice of them every TICK seconds
FAULT_AT = 4.0  # seconds into producing
DOWN = 12.0  # how long a node stays killed, past the broker session timeout (then it takes seconds to start)
FROZEN = 13.0  # how long a broker stays frozen: longer than broker.session.timeout.ms (9 s)
READY_TIMEOUT = 120.0
SETTLE_TIMEOUT = 240.0  # generous: the two cores are shared
IDLE = 3.0  # "settled": what is expected stands and nothing new came for this long
WORKER_ENV = {"MONITOR_SESSION_TIMEOUT_SECONDS": "10", "MONITOR_HEARTBEAT_SECONDS": "1",
              "MONITOR_REBALANCE_TIMEOUT_SECONDS": "30", "MONITOR_TOPIC_REPLICATION": "3"}


@dataclass(frozen=True)
class Expected:
    """What `evaluate` says of the example events."""

    lines: list[bytes]
    document: dict[str, Any]

    @property
    def as_of(self) -> str:
        return str(self.document["as_of"])

    @property
    def wanted(self) -> dict[str, str]:
        return {a["alert_id"]: a["status"] for a in self.document["alerts"]}

    @property
    def valid(self) -> int:
        """Events `evaluate` judged: every line but the ones it rejected."""
        return len(self.lines) - len(self.document["rejected"])


@pytest.fixture(scope="module")
def expected() -> Expected:
    lines = EXAMPLE_EVENTS.read_bytes().splitlines()
    return Expected(lines, evaluate_json([EXAMPLE_EVENTS]))


# ---- producing across the fault -----------------------------------------------------------------


class SteadyProducer(threading.Thread):
    """Produces the records a slice every TICK seconds over PRODUCE_SECONDS, whatever the cluster
    does: acks=all, idempotent, and a send that fails (the leader gone, a timeout) is sent again."""

    def __init__(self, bootstrap: str, records: Sequence[Record]) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.records = bootstrap, records
        self.error: BaseException | None = None
        self.started_at = 0.0
        self.resent = 0
        self.failures: dict[str, int] = {}
        self.seconds = 0.0

    def run(self) -> None:
        self.started_at = time.monotonic()
        try:
            asyncio.run(self._produce())
        except BaseException as exc:  # reported by the test thread
            self.error = exc
        self.seconds = time.monotonic() - self.started_at

    async def _produce(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True,
                                    linger_ms=5, request_timeout_ms=15_000, retry_backoff_ms=200)
        await producer.start()
        pending: list[tuple[Record, asyncio.Future[Any]]] = []
        retry: list[Record] = []

        async def send(record: Record) -> None:
            topic, key, value = record
            try:
                pending.append((record, await producer.send(topic, value, key=key)))
            except (KafkaError, TimeoutError) as exc:
                self._failed(exc)
                retry.append(record)

        def sweep() -> None:
            still = []
            for record, future in pending:
                if not future.done():
                    still.append((record, future))
                elif future.exception() is not None:
                    self._failed(future.exception())
                    retry.append(record)
            pending[:] = still

        try:
            slices = max(1, round(PRODUCE_SECONDS / TICK))
            size = -(-len(self.records) // slices)
            for number, start in enumerate(range(0, len(self.records), size)):
                await asyncio.sleep(max(0.0, self.started_at + number * TICK - time.monotonic()))
                sweep()
                again, retry[:] = list(retry), []
                self.resent += len(again)
                for record in [*again, *self.records[start : start + size]]:
                    await send(record)
            deadline = time.monotonic() + 180
            while pending or retry:
                assert time.monotonic() < deadline, f"{len(pending) + len(retry)} records still not acknowledged"
                await asyncio.sleep(0.2)
                sweep()
                again, retry[:] = list(retry), []
                self.resent += len(again)
                for record in again:
                    await send(record)
        finally:
            await producer.stop()

    def _failed(self, exc: BaseException | None) -> None:
        name = type(exc).__name__
        self.failures[name] = self.failures.get(name, 0) + 1

    def at(self, seconds: float) -> None:
        """Wait until `seconds` into producing."""
        time.sleep(max(0.0, self.started_at + seconds - time.monotonic()))

    def finish(self) -> float:
        self.join(timeout=240)
        assert not self.is_alive(), "producing did not finish in 240 s"
        assert self.error is None, repr(self.error)
        return self.seconds


# ---- what the worker says -----------------------------------------------------------------------


def metrics(worker: WorkerProcess) -> dict[str, float] | None:
    """The worker's /metrics, each sample's name summed over its labels; None if it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}/metrics", timeout=2) as answer:
            text = answer.read().decode()
    except OSError:
        return None
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
    return sums


def judged(figures: dict[str, float] | None) -> int:
    return int((figures or {}).get("monitor_event_processing_lag_seconds_count", 0.0))


@dataclass
class AlertWatch:
    """The alerts topic read from the beginning in the background, into `messages`."""

    bootstrap: str
    topic: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    last_at: float = field(default_factory=time.monotonic)
    stopping: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.lock = threading.Lock()

    def start(self) -> AlertWatch:
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._read())
        except BaseException as exc:  # reported by the test thread
            self.error = exc

    async def _read(self) -> None:
        consumer = AIOKafkaConsumer(self.topic, bootstrap_servers=self.bootstrap, group_id=None,
                                    auto_offset_reset="earliest", enable_auto_commit=False,
                                    request_timeout_ms=15_000)
        await consumer.start()
        try:
            while not self.stopping.is_set():
                batch = await consumer.getmany(timeout_ms=200)
                found = [orjson.loads(record.value) for records in batch.values() for record in records]
                if found:
                    with self.lock:
                        self.messages.extend(found)
                        self.last_at = time.monotonic()
        finally:
            await consumer.stop()

    def standing(self) -> dict[str, str]:
        with self.lock:
            return {k: m["status"] for k, m in final_alerts(self.messages).items() if m["status"] != "retracted"}

    def latest(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return final_alerts(list(self.messages))

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=30)
        assert self.error is None, repr(self.error)


class Settling(threading.Thread):
    """Watches, from the start of producing, whether the expected alerts stand and every valid event
    was judged; `since` is when that last became true (None while it is not)."""

    def __init__(self, group: Sequence[WorkerProcess], watch: AlertWatch, expected: Expected) -> None:
        super().__init__(daemon=True)
        self.group, self.watch, self.expected = group, watch, expected
        self.since: float | None = None
        self.standing: dict[str, str] = {}
        self.count = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            standing = self.watch.standing()
            count = sum(judged(metrics(worker)) for worker in self.group)
            self.standing, self.count = standing, count
            done = standing == self.expected.wanted and count >= self.expected.valid
            if not done:
                self.since = None
            elif self.since is None:
                self.since = time.monotonic()
            time.sleep(0.5)

    def wait(self) -> float:
        """The moment the run settled: the expected alerts stand, every valid event was judged, and
        nothing new came for IDLE seconds since; fails with what differs."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        try:
            while time.monotonic() < deadline:
                for worker in self.group:
                    assert worker.process is not None and worker.process.poll() is None, worker.tail()
                since = self.since
                if since is not None and time.monotonic() - max(since, self.watch.last_at) >= IDLE:
                    return since
                time.sleep(0.5)
        finally:
            self.stopping.set()
            self.join(timeout=10)
        wanted, standing = self.expected.wanted, self.standing
        differ = {k: (standing.get(k), wanted.get(k)) for k in standing.keys() | wanted.keys()
                  if standing.get(k) != wanted.get(k)}
        raise AssertionError(f"not settled after {SETTLE_TIMEOUT:.0f} s: {self.count} of {self.expected.valid} "
                             f"events judged; {len(differ)} alerts differ (stream, evaluate), e.g. "
                             f"{sorted(differ.items())[:5]}\n" + "\n".join(worker.tail() for worker in self.group))


# ---- the history store ----------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreCheck:
    transitions: int
    repeated: list[str]  # alert ids with two transitions that say the same thing
    broken: dict[str, str]  # exporter -> what its chain check found


T = TypeVar("T")


async def _when_unlocked(action: Callable[[], Awaitable[T]], deadline: float) -> T:
    """`action`, tried again while the worker's history sink holds SQLite's write lock (its
    batches can hold it past the driver's wait under load), until `deadline`."""
    while True:
        try:
            return await action()
        except OperationalError as exc:
            if "database is locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.5)


async def check_store(url: str, latest: dict[str, dict[str, Any]], timeout: float = 120.0) -> StoreCheck:
    """Once the store's alerts stand as the topic's latest messages say: every alert's transitions
    distinct (no two consecutive ones the same fact, no message stored twice) and every chain intact."""
    deadline = time.monotonic() + timeout
    store = await _when_unlocked(lambda: HistoryStore.open(url), deadline)
    try:
        wanted = {alert_id: message["status"] for alert_id, message in latest.items()}

        async def read() -> dict[str, str]:
            async with store.read_session() as session:
                return {row.alert_id: row.status for row in await session.execute(select(Alert.alert_id,
                                                                                        Alert.status))}

        while True:
            stored = await _when_unlocked(read, deadline)
            if stored == wanted:
                break
            assert time.monotonic() < deadline, (f"the history store does not show the alerts published: "
                                                 f"{len(stored)} stored, {len(wanted)} published")
            await asyncio.sleep(0.5)
        total, repeated = 0, []
        for alert_id in sorted(wanted):
            transitions = [{k: v for k, v in t.items() if k not in ("seq", "hash", "prev_hash")}
                           for t in await store.transitions(alert_id)]
            total += len(transitions)
            texts = [canonical_json(t) for t in transitions]
            if len(set(texts)) != len(texts) or any(same_fact(a, b) for a, b in itertools.pairwise(transitions)):
                repeated.append(alert_id)
        broken = {}
        for exporter in await store.exporters():
            chain = await store.verify_chain(exporter)
            if not chain.ok:
                broken[exporter] = str(chain.detail)
        return StoreCheck(total, repeated, broken)
    finally:
        await store.close()


# ---- one run across one fault ---------------------------------------------------------------------


def leaders_now(cluster: KafkaCluster, topics: list[str], away: KafkaNode | None = None) -> dict[tuple[str, int], int]:
    bootstrap = ",".join(f"127.0.0.1:{node.client_port}" for node in cluster.brokers
                         if node.running and node is not away)
    return asyncio.run(partition_leaders(bootstrap, topics))


def changes(*samples: dict[tuple[str, int], int]) -> int:
    """Partition leaderships that changed from one sample to the next."""
    return sum(1 for a, b in itertools.pairwise(samples) for key in a if b.get(key) != a[key])


def run_across(cluster: KafkaCluster, tmp_path: Path, expected: Expected, name: str,
               fault: Callable[[TopicNames, list[str]], tuple[KafkaNode, Callable[[], None], KafkaNode | None]],
               down: float, done_to_it: str, workers: int = 1) -> None:
    """Produce the example events across `fault` (given the names and the topics to watch, it picks
    a node, acts on it and returns the node, how to restore it, and a broker not to ask meanwhile)
    and check what the workers (`workers` of them, in one group, sharing one history store) made
    of them."""
    names = unique_names()
    records = records_of_lines(expected.lines, names)
    store_url = f"sqlite+aiosqlite:///{tmp_path / 'history.sqlite3'}"
    env = {"MONITOR_AS_OF": expected.as_of, "MONITOR_DATABASE_URL": store_url, **WORKER_ENV}
    group = [WorkerProcess(cluster.bootstrap, names, tmp_path, env=env, name=f"worker-{n}")
             for n in range(1, workers + 1)]
    with contextlib.ExitStack() as stack:
        for worker in group:
            stack.enter_context(worker)
        ready = max(worker.wait_ready(READY_TIMEOUT) for worker in group)
        topics = [*names.inputs, names.internal(group[0].app_id), names.alerts]
        before = leaders_now(cluster, topics)
        watch = AlertWatch(cluster.bootstrap, names.alerts).start()
        settling = Settling(group, watch, expected)
        settling.start()
        producer = SteadyProducer(cluster.bootstrap, records)
        producer.start()
        producer.at(FAULT_AT)
        fault_started = time.monotonic()
        node, restore, away = fault(names, topics)
        time.sleep(down)
        during = leaders_now(cluster, topics, away)
        restore()
        back = time.monotonic()
        produced = producer.finish()
        acknowledged = time.monotonic()
        settled_at = settling.wait()
        figures = [metrics(worker) or {} for worker in group]
        after = leaders_now(cluster, topics)
        latest = watch.latest()
        watch.stop()
        died = [worker.tail() for worker in group if worker.process is None or worker.process.poll() is not None]
        store = asyncio.run(check_store(store_url, latest))
        assert not died, died
        died = [worker.tail() for worker in group if worker.process is None or worker.process.poll() is not None]
        assert not died, died

    count = sum(judged(f) for f in figures)
    duplicates = sum(int(f.get("monitor_events_duplicate_total", 0.0)) for f in figures)
    refetched = sum(int(f.get("monitor_envelopes_refetched_total", 0.0)) for f in figures)
    print(f"\n{name}: node {node.node_id}, {workers} worker(s) ready in {ready:.1f} s; {len(records)} records "
          f"produced in {produced:.1f} s ({producer.resent} sent again; send failures {producer.failures}); "
          f"fault {FAULT_AT:.0f} s into producing, {done_to_it} for {down:.0f} s, "
          f"{back - fault_started:.1f} s until it answered again; alerts settled {settled_at - fault_started:.1f} s "
          f"after the fault began, {settled_at - back:+.1f} s from the node's return, "
          f"{settled_at - acknowledged:+.1f} s from the last record's acknowledgement; "
          f"{count} events judged of {expected.valid} valid (per worker {[judged(f) for f in figures]}); "
          f"{duplicates} duplicates; {refetched} envelopes refetched; partition leaderships changed: "
          f"{changes(before, during)} during the fault, {changes(during, after)} after it; {len(latest)} alert ids "
          f"published ({len(expected.wanted)} standing, the rest retracted); {store.transitions} transitions stored")
    assert watch.standing() == expected.wanted
    assert count == expected.valid, f"{count} events judged, {expected.valid} valid"
    assert not store.repeated, f"alerts with a transition stored twice: {store.repeated[:10]}"
    assert not store.broken, store.broken


# ---- the faults ---------------------------------------------------------------------------------


def test_killing_the_busiest_partition_leader_loses_nothing(whole_cluster: KafkaCluster, tmp_path: Path,
                                                           expected: Expected) -> None:
    cluster = whole_cluster

    def kill_leader(names: TopicNames, topics: list[str]) -> tuple[KafkaNode, Callable[[], None], KafkaNode | None]:
        inputs = list(names.inputs)
        node = busiest_leader(cluster, leaders_now(cluster, inputs), inputs)
        node.kill()

        def restart() -> None:
            node.start(cluster.classpath)
            node.wait_started()

        return node, restart, node

    run_across(cluster, tmp_path, expected, "broker killed", kill_leader, DOWN, "killed")


def test_killing_the_active_controller_loses_nothing(whole_cluster: KafkaCluster, tmp_path: Path,
                                                     expected: Expected) -> None:
    cluster = whole_cluster
    replaced: list[int] = []

    def kill_controller(names: TopicNames, topics: list[str]) -> tuple[KafkaNode, Callable[[], None], None]:
        node = active_controller(cluster)
        node.kill()

        def restart() -> None:
            replaced.append(active_controller(cluster).node_id)
            node.start(cluster.classpath)
            node.wait_started()

        return node, restart, None

    run_across(cluster, tmp_path, expected, "controller killed", kill_controller, DOWN, "killed")
    print(f"the quorum's leader while controller was down: {replaced}")


def test_freezing_a_broker_past_its_session_loses_nothing(whole_cluster: KafkaCluster, tmp_path: Path,
                                                          expected: Expected) -> None:
    cluster = whole_cluster

    def freeze_leader(names: TopicNames, topics: list[str]) -> tuple[KafkaNode, Callable[[], None], KafkaNode]:
        inputs = list(names.inputs)
        node = busiest_leader(cluster, leaders_now(cluster, inputs), inputs)
        node.freeze()
        return node, node.thaw, node

    run_across(cluster, tmp_path, expected, "broker frozen", freeze_leader, FROZEN, "frozen")
