"""What a worker reads straight from the broker, around the consumer: the true end of a changelog
(a takeover restores its tables completely), a range of envelopes the consumer left out, input
records it skipped, and how many messages a topic holds (the dead letters). On both brokers: the
embedded one reports a partition's end as the start of its last batch plus one, Apache Kafka its
true end, and the worker tells them apart."""

from __future__ import annotations

import asyncio
from pathlib import Path
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faust.types import TP
from prometheus_client import REGISTRY

from monitor.contracts.policy import DEFAULT_POLICY
from monitor.embedded.deviations import reports_short_end_offsets
from monitor.kafka.reads import last_batches, read_range, true_ends
from monitor.obligations.policy import PolicyBook
from monitor.stream.settings import WorkerSettings
from monitor.stream.worker import StreamWorker, topic_depth


async def _one_batch(bootstrap: str, topic: str, count: int) -> None:
    """`count` records sent together, so the producer puts them in one record batch."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=200)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"first", key=b"k-first")
        sent = [await producer.send(topic, b"v%d" % i, key=b"k%d" % i) for i in range(count)]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def _reported_end(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        return (await consumer.end_offsets([tp]))[tp]
    finally:
        await consumer.stop()


def test_the_last_batch_is_read_to_its_true_end_whatever_end_offset_the_broker_reports(
        kafka_bootstrap: str, broker_kind: str) -> None:
    topic = f"test.tail.{uuid4().hex[:12]}"
    asyncio.run(_one_batch(kafka_bootstrap, topic, 20))
    reported = asyncio.run(_reported_end(kafka_bootstrap, topic))
    print(f"\n21 records in two batches (1 + 20); end offset reported: {reported}")

    tail, past_end = asyncio.run(last_batches(kafka_bootstrap, [(topic, 0)]))[(topic, 0)]

    # whatever the broker reports, the tail runs from the record at the reported end less one
    # to the last record written, in order
    assert 1 <= reported <= 21
    written = [(b"k-first", b"first"), *((b"k%d" % i, b"v%d" % i) for i in range(20))]
    assert tail[-1] == (b"k19", b"v19")
    assert tail == written[reported - 1 : reported - 1 + len(tail)]
    assert reported - 1 + len(tail) == 21
    assert past_end == 21 - reported
    if broker_kind == "kafka":
        assert reported == 21 and tail == [(b"k19", b"v19")], "Apache Kafka reports the true end"
    else:
        assert reported < 21, "the embedded broker reports the end of a partition short"


def test_a_partitions_true_end_is_one_past_its_last_record_whatever_end_the_broker_reports(
        kafka_bootstrap: str) -> None:
    topic = f"test.true-end.{uuid4().hex[:12]}"
    asyncio.run(_one_batch(kafka_bootstrap, topic, 20))
    assert asyncio.run(true_ends(kafka_bootstrap, [(topic, 0)])) == {(topic, 0): 21}


def test_the_worker_reads_past_reported_ends_on_the_embedded_broker_only(kafka_bootstrap: str,
                                                                         broker_kind: str) -> None:
    assert asyncio.run(reports_short_end_offsets(kafka_bootstrap)) is (broker_kind == "embedded")


def test_an_empty_changelog_has_no_tail(kafka_bootstrap: str) -> None:
    topic = f"test.tail.{uuid4().hex[:12]}"

    async def create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        finally:
            await admin.close()

    asyncio.run(create())
    assert asyncio.run(last_batches(kafka_bootstrap, [(topic, 0)])) == {(topic, 0): ([], 0)}


def test_a_range_of_envelopes_is_read_exactly_from_start_to_before_end(kafka_bootstrap: str) -> None:
    topic = f"test.range.{uuid4().hex[:12]}"
    asyncio.run(_one_batch(kafka_bootstrap, topic, 20))  # offsets 0 (one batch) and 1..20 (another)

    records = asyncio.run(read_range(kafka_bootstrap, topic, 0, 3, 9))  # starts inside the second batch

    assert [offset for offset, _, _ in records] == list(range(3, 9))
    assert [(key, value) for _, key, value in records] == [(b"k%d" % i, b"v%d" % i) for i in range(2, 8)]


def _input_skipped() -> float:
    return REGISTRY.get_sample_value("monitor_workaround_records_total", {"workaround": "input_skipped"}) or 0.0


def test_input_records_the_consumer_skipped_are_read_from_the_topic(kafka_bootstrap: str, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = f"test.skip.{uuid4().hex[:12]}."
    for name, value in {"kafka_bootstrap": kafka_bootstrap, "topic_prefix": prefix, "data_dir": str(tmp_path),
                        "app_id": f"{prefix}monitor"}.items():
        monkeypatch.setenv(f"MONITOR_{name.upper()}", value)
    worker = StreamWorker(WorkerSettings(), {}, PolicyBook(DEFAULT_POLICY))  # its app is not started
    topic = worker.names.tickets
    asyncio.run(_one_batch(kafka_bootstrap, topic, 20))  # offsets 0 and 1..20: value v<i> at offset i + 1
    partition = ("service-tickets", 0)

    async def skipped(offset: int) -> list[int]:
        records = await worker._skipped_before(topic, "service-tickets", 0, offset)
        assert all(value == b"v%d" % (at - 1) and key == b"k%d" % (at - 1) for at, key, value in records)
        return [at for at, _, _ in records]

    before = _input_skipped()
    assert asyncio.run(skipped(2)) == [], "nothing routed yet and no seek: no offset is expected"
    assert asyncio.run(skipped(3)) == []  # the one after the last routed
    assert asyncio.run(skipped(8)) == [4, 5, 6, 7]
    assert worker.read_to[partition] == 8
    assert asyncio.run(skipped(5)) == [], "read again after a seek back: nothing was skipped"
    assert worker.read_to[partition] == 8
    assert _input_skipped() - before == 4

    # a partition taken over: the offset expected is the committed one it was sought to
    del worker.read_to[partition]
    worker.app.consumer.sought[TP(topic, 0)] = 12
    assert asyncio.run(skipped(12)) == []
    assert asyncio.run(skipped(15)) == [13, 14]
    assert _input_skipped() - before == 6


def test_the_messages_a_topic_holds_are_counted_to_the_true_end_of_each_partition(kafka_bootstrap: str,
                                                                                  broker_kind: str) -> None:
    topic = f"test.depth.{uuid4().hex[:12]}"
    asyncio.run(_one_batch(kafka_bootstrap, topic, 20))  # 21 records; the broker may report fewer
    known: dict[int, tuple[int, int]] = {}

    assert asyncio.run(topic_depth(kafka_bootstrap, topic, known)) == 21
    assert asyncio.run(topic_depth(kafka_bootstrap, topic, known)) == 21, "nothing new: the same count"

    async def three_more() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=200)
        await producer.start()
        try:
            await asyncio.gather(*[await producer.send(topic, b"w%d" % i) for i in range(3)])
        finally:
            await producer.stop()

    asyncio.run(three_more())
    assert asyncio.run(topic_depth(kafka_bootstrap, topic, known)) == 24
    # the reported ends alone, as on a broker that reports them true
    reported_only = asyncio.run(topic_depth(kafka_bootstrap, topic, None))
    assert reported_only == 24 if broker_kind == "kafka" else reported_only <= 24
    assert asyncio.run(topic_depth(kafka_bootstrap, f"test.none.{uuid4().hex[:12]}", {})) == 0
