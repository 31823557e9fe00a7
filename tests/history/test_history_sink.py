"""The history sink on both real brokers (embedded and Apache Kafka): topics into the store, offsets
committed after, replays add nothing; `monitor sink` alone, and `monitor worker` storing what it publishes."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from monitor.history.sink import HistorySink
from monitor.history.store import HistoryStore
from monitor.stream.topics import TopicNames, ensure_topics
from tests.history.records import alert, dump, registration, snapshot
from tests.history.running import eventually, make_sink, stop
from tests.streaming import (
    EXAMPLE_EVENTS,
    ROOT,
    WorkerProcess,
    evaluate_json,
    final_alerts,
    metric,
    produce,
    read_topic,
    records_of_lines,
    unique_names,
)


async def count_transitions(url: str) -> int:
    store = await HistoryStore.open(url)
    try:
        return sum([(await store.verify_chain(e)).transitions for e in await store.exporters()])
    finally:
        await store.close()


def records(names: TopicNames) -> list[tuple[str, bytes | None, bytes | None]]:
    """What a worker would have published, with a repeat, two unusable records and a tombstone."""
    alerts = [alert(n, exporter=f"EXP-{e}") for e in (1, 2, 3) for n in range(1, 5)]
    alerts += [alert(1, exporter="EXP-1", status="resolved", resolved_at="2026-03-04T08:00:00Z"),
               alert(2, exporter="EXP-2", status="retracted"),
               alert(3, exporter="EXP-3", raised_at="2026-03-03T12:00:00Z")]  # a repeat
    out: list[tuple[str, bytes | None, bytes | None]] = [
        (names.alerts, a["alert_id"].encode(), orjson.dumps(a)) for a in alerts]
    out += [(names.compliance, f"EXP-{e}:KE".encode(), orjson.dumps(snapshot(f"2026-03-0{d}T10:00:00Z",
                                                                                exporter=f"EXP-{e}")))
            for e in (1, 2) for d in (1, 2)]
    out += [(names.registry, f"EXP-{e}".encode(), orjson.dumps(registration(f"EXP-{e}"))) for e in (1, 2, 3)]
    out += [(names.alerts, b"junk", b"not json"), (names.alerts, b"half", orjson.dumps({"alert_id": "X"})),
            (names.registry, b"EXP-9", None)]
    return out


async def topics_holding_records(bootstrap: str, tmp_path: Path) -> tuple[TopicNames, str, str]:
    """New topics of two partitions holding `records`, with a store URL and a sink group for them."""
    names = unique_names()
    await ensure_topics(bootstrap, names, partitions=2)
    await produce(bootstrap, records(names))  # type: ignore[arg-type]
    return names, f"sqlite+aiosqlite:///{tmp_path / 'history.sqlite3'}", f"{names.prefix}monitor-history"


async def test_the_sink_stores_the_topics_commits_after_and_a_replay_adds_nothing(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    names, url, group = await topics_holding_records(kafka_bootstrap, tmp_path)
    sink = make_sink(kafka_bootstrap, names, url, group)
    task = asyncio.create_task(sink.run())
    try:
        took = await eventually(lambda: _consumed(sink, 25), 30, "the sink reads every record")
        await eventually(lambda: _committed(kafka_bootstrap, group, names, sink), 10, "offsets committed")
    finally:
        await stop(task)
    print(f"\nfirst run: {sink.stats} in {took:.1f} s")
    assert (sink.stats.consumed, sink.stats.ignored) == (25, 3)
    first = await dump(url)
    assert len(first["alert_transitions"]) == 14  # 12 opened, one resolved, one retracted; the repeat is not
    assert len(first["alert_repeats"]) == 1
    assert len(first["compliance_latest"]) == 2
    assert len(first["registrations"]) == 3
    assert [row[0] for row in first["policy_versions"]] == ["2026.1"]

    store = await HistoryStore.open(url)
    try:
        assert all([(await store.verify_chain(e)).ok for e in ("EXP-1", "EXP-2", "EXP-3")])
        assert [a["status"] for a in (await store.alerts(exporters={"EXP-1"}))[0]] == ["resolved", "open", "open",
                                                                                       "open"]
    finally:
        await store.close()

    # a new group reads the topics again from the start: the store stays as it was
    replay = make_sink(kafka_bootstrap, names, url, f"{group}-again")
    task = asyncio.create_task(replay.run())
    try:
        await eventually(lambda: _consumed(replay, 25), 30, "the replay reads every record")
        await eventually(lambda: _committed(kafka_bootstrap, f"{group}-again", names, replay), 10,
                         "offsets committed")
    finally:
        await stop(task)
    print(f"replay: {replay.stats}")
    assert replay.stats.stored == 0
    assert await dump(url) == first


class _ConsumerThatStopsShort(HistorySink):
    """A sink whose consumer delivers nothing (every assigned partition paused before each fetch, so it
    never learns of an end either): the fault the embedded broker's consumer shows at the end of a
    quiet partition, made total."""

    async def _connect(self) -> Any:
        consumer = await super()._connect()
        fetch = consumer.getmany

        async def getmany(*partitions: TopicPartition, **options: Any) -> Any:
            consumer.pause(*consumer.assignment())
            return await fetch(*partitions, **options)

        consumer.getmany = getmany
        return consumer


async def test_records_the_consumer_leaves_out_at_a_quiet_end_are_read_directly_stored_and_committed(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    names, url, group = await topics_holding_records(kafka_bootstrap, tmp_path)
    sink = make_sink(kafka_bootstrap, names, url, group, kind=_ConsumerThatStopsShort, recheck_seconds=3.0,
                     pending_seconds=3.0)
    task = asyncio.create_task(sink.run())
    try:
        took = await eventually(lambda: _consumed(sink, 25), 30, "the sink reads every record directly")
        await eventually(lambda: _committed(kafka_bootstrap, group, names, sink), 10, "offsets committed")
        # a record written later, to a partition already read to its end, is read at the next recheck
        later = alert(9, exporter="EXP-1")
        await produce(kafka_bootstrap, [(names.alerts, later["alert_id"].encode(), orjson.dumps(later))])
        await eventually(lambda: _transitions_are(url, 15), 30, "the sink stores the later record")
        await eventually(lambda: _committed(kafka_bootstrap, group, names, sink), 10, "its offset committed")
    finally:
        await stop(task)
    print(f"\n{sink.stats} in {took:.1f} s")
    assert sink.stats.read_directly == sink.stats.consumed == 26
    assert len((await dump(url))["alert_transitions"]) == 15  # the 14 of the first test and the later one


async def _consumed(sink: HistorySink, wanted: int) -> bool:
    return sink.stats.consumed >= wanted and sink.stats.batches > 0


async def _committed(bootstrap: str, group: str, names: TopicNames, sink: HistorySink) -> bool:
    """Whether the group's committed offsets reached the end of every partition of the three topics."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in (names.alerts, names.compliance, names.registry) for p in (0, 1)]
        ends = await consumer.end_offsets(tps)
        return all([(await consumer.committed(tp) or 0) >= ends[tp] for tp in tps])
    finally:
        await consumer.stop()


def test_monitor_sink_runs_alone_and_stops_cleanly_on_sigterm(kafka_bootstrap: str, tmp_path: Path) -> None:
    names = unique_names()
    url = f"sqlite+aiosqlite:///{tmp_path / 'history.sqlite3'}"
    env = {**os.environ, "MONITOR_KAFKA_BOOTSTRAP": kafka_bootstrap, "MONITOR_TOPIC_PREFIX": names.prefix,
           "MONITOR_APP_ID": f"{names.prefix}monitor", "MONITOR_DATABASE_URL": url,
           "MONITOR_DATA_DIR": str(tmp_path), "MONITOR_SESSION_TIMEOUT_SECONDS": "6"}
    log = (tmp_path / "sink.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "monitor", "sink"], env=env, stdout=log,
                               stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
    asyncio.run(ensure_topics(kafka_bootstrap, names, partitions=2))
    try:
        asyncio.run(produce(kafka_bootstrap, [(names.alerts, b"a", orjson.dumps(alert(n))) for n in range(1, 6)]))
        asyncio.run(eventually(lambda: _transitions_are(url, 5), 40, "`monitor sink` stores the alerts"))
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=20)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
    output = (tmp_path / "sink.log").read_text()
    assert code == 0, output
    assert "history sink stopped" in output
    store_rows = asyncio.run(dump(url))
    assert [row[0] for row in store_rows["policy_versions"]] == ["2026.1"]
    assert len(store_rows["registrations"]) == 4  # the bundled example registry file


async def _where_the_sink_is(bootstrap: str, group: str, topic: str) -> dict[int, tuple[int | None, int]]:
    """Per partition of `topic`: the sink group's committed offset and the partition's end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        ends = await consumer.end_offsets(tps)
        return {tp.partition: (await consumer.committed(tp), ends[tp]) for tp in tps}
    finally:
        await consumer.stop()


def _sink_figures(worker: WorkerProcess) -> str:
    """What the worker's sink says it did, from its /metrics page."""
    try:
        return ", ".join(f"{name} {metric(worker, name):g}" for name in (
            "monitor_history_records_consumed_total", "monitor_history_rows_written_total",
            "monitor_history_batches_committed_total", "monitor_history_store_retries_total",
            "monitor_history_records_read_directly_total"))
    except OSError as exc:
        return f"(its /metrics could not be read: {exc!r})"


async def _transitions_are(url: str, wanted: int) -> bool:
    if not Path(url.removeprefix("sqlite+aiosqlite:///")).exists():
        return False
    try:
        return await count_transitions(url) >= wanted
    except Exception:  # the sink may still be creating the schema
        return False


def _history_stacks(worker: WorkerProcess) -> str:
    """Every thread's and task's stack in the worker's history stage (SIGUSR1), from its log."""
    found = re.search(r"history stage started \(pid (\d+)\)", worker.tail(100_000))
    if found is None:
        return "(the history stage's pid is not in the log)"
    before = len(worker.tail(1_000_000).splitlines())
    try:
        os.kill(int(found[1]), signal.SIGUSR1)
    except ProcessLookupError:
        return "(the history stage is gone)"
    time.sleep(2.0)
    return "\n".join(worker.tail(1_000_000).splitlines()[before:][:300])


def test_a_worker_stores_every_alert_it_publishes(kafka_bootstrap: str, tmp_path: Path) -> None:
    expected = evaluate_json([EXAMPLE_EVENTS])
    wanted = {a["alert_id"]: a["status"] for a in expected["alerts"]}
    names = unique_names()
    url = f"sqlite+aiosqlite:///{tmp_path / 'history.sqlite3'}"
    lines = EXAMPLE_EVENTS.read_bytes().splitlines()
    env = {"MONITOR_DATABASE_URL": url, "MONITOR_DATA_DIR": str(tmp_path), "MONITOR_AS_OF": expected["as_of"]}
    with WorkerProcess(kafka_bootstrap, names, tmp_path, env=env) as worker:
        asyncio.run(produce(kafka_bootstrap, records_of_lines(lines, names)))

        def settled(messages: list[dict[str, Any]]) -> bool:
            return {k: m["status"] for k, m in final_alerts(messages).items() if m["status"] != "retracted"} == wanted

        published = asyncio.run(read_topic(kafka_bootstrap, names.alerts, until=settled, idle=2.0, timeout=90))
        assert published, worker.tail()
        latest = final_alerts(published)
        differences: dict[str, tuple[Any, Any]] = {}

        async def stored_everything() -> bool:
            nonlocal published, latest
            store = await HistoryStore.open(url)
            try:
                found, _ = await store.alerts(exporters=None, limit=10_000)
            finally:
                await store.close()
            stored = {a["alert_id"]: a for a in found}
            if stored != latest:  # what the worker published since the first read counts as well
                published = await read_topic(kafka_bootstrap, names.alerts, idle=0.5, timeout=10)
                latest = final_alerts(published)
            differences.clear()
            differences.update({k: (latest.get(k), stored.get(k)) for k in {*latest, *stored}
                                if latest.get(k) != stored.get(k)})
            return not differences

        try:
            took = asyncio.run(eventually(stored_everything, 30, "the worker's sink stores every alert"))
        except AssertionError as exc:
            where = asyncio.run(_where_the_sink_is(kafka_bootstrap, f"{worker.app_id}-history", names.alerts))
            log = [line for line in worker.tail(2000).splitlines()  # the sink's and groups' lines, every warning
                   if line[:2].isdigit() and "mode.timers" not in line
                   and ("history" in line or "group_coordinator" in line or " INFO " not in line)][-40:]
            raise AssertionError(f"{exc}: {len(differences)} alerts differ (published, stored): "
                                 f"{list(differences.items())[:3]}\nthe sink's group on the alerts topic "
                                 f"(partition: committed, end): {where}; {_sink_figures(worker)}\n"
                                 + "\n".join(log) + "\nwhere the history stage waits:\n"
                                 + _history_stacks(worker)) from None
        assert worker.process is not None and worker.process.poll() is None, worker.tail()
        figures = _sink_figures(worker)
    print(f"\n{len(published)} alert messages published, {len(latest)} alerts; stored {took:.1f} s after; {figures}")

    async def check() -> None:
        store = await HistoryStore.open(url)
        try:
            transitions = sum([len(await store.transitions(alert_id)) for alert_id in latest])
            assert transitions <= len(published)
            for exporter in await store.exporters():
                assert (await store.verify_chain(exporter)).ok
            assert await store.compliance(exporters=None)
        finally:
            await store.close()

    asyncio.run(check())


def test_the_commands_offer_the_sink_alone_and_a_worker_without_it() -> None:
    from click.testing import CliRunner

    from monitor.cli import main

    worker_help = CliRunner().invoke(main, ["worker", "--help"])
    assert worker_help.exit_code == 0 and "--no-history" in worker_help.output
    sink_help = CliRunner().invoke(main, ["sink", "--help"])
    assert sink_help.exit_code == 0 and "history store" in sink_help.output


async def test_a_session_timeout_apache_kafka_refuses_stops_the_sink_naming_the_setting(
        apache_kafka: Any, tmp_path: Path) -> None:
    """Apache Kafka refuses consumer session timeouts under group.min.session.timeout.ms (6 s): the
    sink says which setting to change instead of retrying a connection that can never succeed."""
    from monitor.kafka import KafkaSettingRefused

    names = unique_names()
    await ensure_topics(apache_kafka.bootstrap, names, partitions=1)
    sink = make_sink(apache_kafka.bootstrap, names, f"sqlite+aiosqlite:///{tmp_path / 'h.sqlite3'}",
                     f"{names.prefix}history", consumer_options={"session_timeout_ms": 3000})
    try:
        await asyncio.wait_for(sink.run(), timeout=60)
    except KafkaSettingRefused as exc:
        assert "MONITOR_SESSION_TIMEOUT_SECONDS" in str(exc) and "3000 ms" in str(exc)
    else:
        raise AssertionError("the sink ran with a session timeout the broker refuses")

