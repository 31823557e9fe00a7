"""A worker's stages run as processes that are one worker to its operator: the intake and the
history stage (sink and deliverer) in children that live and die with the worker, one /metrics
page for all, and an intake consumer group that starts where the worker's one group of earlier
releases had read to."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitor.stream.metrics import merge_pages
from monitor.stream.stages import carry_committed_offsets, intake_group
from monitor.stream.topics import TopicNames, ensure_topics
from tests.streaming import WorkerProcess, metric, unique_names


def page(consumed: float, lag_count: int, *, loop_lag: float = 0.0, only_here: float | None = None) -> bytes:
    """A /metrics page of one stage, made by prometheus_client itself."""
    registry = CollectorRegistry()
    Counter("monitor_events_consumed", "read", ["topic"], registry=registry).labels("service-tickets").inc(consumed)
    Gauge("monitor_loop_lag_seconds", "lag", registry=registry).set(loop_lag)
    lag = Histogram("monitor_event_processing_lag_seconds", "lag", buckets=(1.0, 10.0), registry=registry)
    for _ in range(lag_count):
        lag.observe(0.5)
    if only_here is not None:
        Gauge("monitor_clock_behind_seconds", "behind", registry=registry).set(only_here)
    Gauge("process_resident_memory_bytes", "rss", registry=registry).set(consumed * 1000)
    return bytes(generate_latest(registry))


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text.decode()) for s in family.samples}


def test_one_page_for_both_stages_adds_their_series_and_keeps_its_own_process_figures() -> None:
    judging = page(0, 7, loop_lag=0.02, only_here=12.0)
    intake = page(1_500, 0, loop_lag=0.01)
    merged = samples(merge_pages(judging, intake))
    assert merged[("monitor_events_consumed_total", (("topic", "service-tickets"),))] == 1_500
    assert merged[("monitor_event_processing_lag_seconds_count", ())] == 7
    assert merged[("monitor_event_processing_lag_seconds_bucket", (("le", "1.0"),))] == 7
    assert merged[("monitor_loop_lag_seconds", ())] == 0.03
    assert merged[("monitor_clock_behind_seconds", ())] == 12.0  # a series of one stage only stays as it is
    assert merged[("process_resident_memory_bytes", ())] == 0  # the serving process's own, not added up


def test_a_page_the_intake_could_not_give_leaves_the_judging_page_whole() -> None:
    judging = page(3, 2)
    assert samples(merge_pages(judging, b"")) == samples(judging)


def children_of(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def intake_of(worker: WorkerProcess) -> int:
    assert worker.process is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = children_of(worker.process.pid)
        if children:
            return children[0]
        time.sleep(0.1)
    raise AssertionError(f"the worker started no intake process:\n{worker.tail()}")


def first_counted(worker: WorkerProcess, name: str, timeout: float = 30) -> float:
    """The worker's `name` once it counts anything (or after `timeout`)."""
    deadline = time.monotonic() + timeout
    while metric(worker, name) < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    return metric(worker, name)


def kill_alone(worker: WorkerProcess) -> None:
    """kill -9 the worker alone, not its process group, and wait for it."""
    assert worker.process is not None
    os.kill(worker.process.pid, signal.SIGKILL)
    worker.process.wait(10)


def gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def test_the_intake_stage_stops_when_its_worker_is_killed(kafka_bootstrap: str, tmp_path: Path) -> None:
    names = unique_names()
    worker = WorkerProcess(kafka_bootstrap, names, tmp_path, arguments=["--no-history"]).start()
    try:
        worker.wait_ready(120)
        intake = intake_of(worker)
        health = worker.health()
        assert health is not None and health["stage"] == "judging"
        asyncio.run(send(kafka_bootstrap, names.tickets, b"not an event"))  # read by the intake, dead-lettered
        assert first_counted(worker, "monitor_events_consumed_total") == 1, \
            "the intake's series are on the worker's page"
        kill_alone(worker)
        assert gone(intake, 30), f"the intake stage (pid {intake}) outlived its worker:\n{worker.tail()}"
        assert "is gone; stopping" in worker.tail(80)
    finally:
        worker.kill()


def test_a_worker_whose_intake_fails_stops_with_an_error(kafka_bootstrap: str, tmp_path: Path) -> None:
    worker = WorkerProcess(kafka_bootstrap, unique_names(), tmp_path, arguments=["--no-history"]).start()
    try:
        worker.wait_ready(120)
        os.kill(intake_of(worker), signal.SIGKILL)
        assert worker.process is not None
        worker.process.wait(60)
        assert worker.process.returncode == 2, worker.tail()
        assert "the intake stage stopped with exit code -9" in worker.tail(80)
    finally:
        worker.kill()


def history_stage_of(worker: WorkerProcess) -> int:
    """The pid of the worker's history stage, as its log names it."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.search(r"history stage started \(pid (\d+)\)", worker.tail(400))
        if found:
            return int(found[1])
        time.sleep(0.1)
    raise AssertionError(f"the worker started no history stage:\n{worker.tail()}")


def history_worker(kafka_bootstrap: str, names: TopicNames, tmp_path: Path) -> WorkerProcess:
    url = f"sqlite+aiosqlite:///{tmp_path / 'history.sqlite3'}"
    return WorkerProcess(kafka_bootstrap, names, tmp_path, env={"MONITOR_DATABASE_URL": url}).start()


# The history stage is a process of the worker's, whatever the broker: on the embedded one only.
def test_the_history_stage_stores_apart_and_stops_when_its_worker_is_killed(embedded_bootstrap: str,
                                                                           tmp_path: Path) -> None:
    names = unique_names()
    worker = history_worker(embedded_bootstrap, names, tmp_path)
    try:
        worker.wait_ready(120)
        history = history_stage_of(worker)
        assert worker.process is not None and history != worker.process.pid
        assert history in children_of(worker.process.pid)
        asyncio.run(send(embedded_bootstrap, names.registry, b"not a registration", b"EXP-X"))  # the sink skips it
        assert first_counted(worker, "monitor_history_records_consumed_total") == 1, \
            f"the history stage's series are on the worker's page:\n{worker.tail()}"
        kill_alone(worker)
        assert gone(history, 30), f"the history stage (pid {history}) outlived its worker:\n{worker.tail()}"
        assert "the worker that started this history stage" in worker.tail(80)
    finally:
        worker.kill()


def test_a_worker_whose_history_stage_fails_stops_with_an_error(embedded_bootstrap: str, tmp_path: Path) -> None:
    worker = history_worker(embedded_bootstrap, unique_names(), tmp_path)
    try:
        worker.wait_ready(120)
        os.kill(history_stage_of(worker), signal.SIGKILL)
        assert worker.process is not None
        worker.process.wait(60)
        assert worker.process.returncode == 2, worker.tail()
        assert "the history stage stopped with exit code -9" in worker.tail(80)
    finally:
        worker.kill()


async def send(bootstrap: str, topic: str, value: bytes, key: bytes | None = None) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def commit(bootstrap: str, group: str, offsets: dict[TopicPartition, int]) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit({tp: OffsetAndMetadata(offset, "") for tp, offset in offsets.items()})
    finally:
        await consumer.stop()


async def committed(bootstrap: str, group: str, partitions: list[TopicPartition]) -> dict[TopicPartition, int | None]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return {tp: await consumer.committed(tp) for tp in partitions}
    finally:
        await consumer.stop()


async def fill(bootstrap: str, names: TopicNames, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for topic in names.inputs:
            for partition in range(2):
                for number in range(count):
                    await producer.send_and_wait(topic, b"{}", key=str(number).encode(), partition=partition)
    finally:
        await producer.stop()


def test_the_intake_group_starts_where_the_worker_group_of_earlier_releases_read_to(kafka_bootstrap: str) -> None:
    names = unique_names()
    kafka = kafka_bootstrap
    asyncio.run(ensure_topics(kafka, names, partitions=2, replication=1))
    asyncio.run(fill(kafka_bootstrap, names, 5))
    app_id = f"{names.prefix}monitor"
    partitions = [TopicPartition(topic, p) for topic in names.inputs for p in range(2)]
    earlier = {tp: 1 + i % 4 for i, tp in enumerate(partitions)}
    asyncio.run(commit(kafka_bootstrap, app_id, earlier))

    carried = asyncio.run(carry_committed_offsets(kafka, app_id, intake_group(app_id), names.inputs))
    assert carried == len(partitions)
    assert asyncio.run(committed(kafka_bootstrap, intake_group(app_id), partitions)) == earlier

    # once the intake group has read on, its own offsets stand
    asyncio.run(commit(kafka_bootstrap, intake_group(app_id), {partitions[0]: 5}))
    assert asyncio.run(carry_committed_offsets(kafka, app_id, intake_group(app_id), names.inputs)) == 0
    assert asyncio.run(committed(kafka_bootstrap, intake_group(app_id), partitions))[partitions[0]] == 5


def test_a_new_worker_with_no_earlier_group_carries_nothing(kafka_bootstrap: str) -> None:
    names = unique_names()
    kafka = kafka_bootstrap
    asyncio.run(ensure_topics(kafka, names, partitions=2, replication=1))
    app_id = f"{names.prefix}monitor"
    assert asyncio.run(carry_committed_offsets(kafka, app_id, intake_group(app_id), names.inputs)) == 0
    partitions = [TopicPartition(topic, p) for topic in names.inputs for p in range(2)]
    assert set(asyncio.run(committed(kafka_bootstrap, intake_group(app_id), partitions)).values()) == {None}

