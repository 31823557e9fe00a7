"""Short reads of Kafka topics around a consumer group's consumer: a consumer of no group that
reads given partitions from given offsets and stops.

The stream worker and the history sink read so what their consumers left out (the end of a
quiet partition, a gap), and the worker reads the last record batches of changelogs and the
true ends of partitions on a broker that reports them short (the embedded one).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from monitor.kafka import KafkaTarget, client_options

DIRECT_READ: contextvars.ContextVar[bool] = contextvars.ContextVar("direct_read", default=False)


class _QuietDirectReads(logging.Filter):
    """Leaves out aiokafka's "Updating subscribed topics" line for the worker's own short reads
    (a partition's end, a changelog's last batch), which would otherwise repeat every few seconds."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not DIRECT_READ.get()


logging.getLogger("aiokafka.consumer.subscription_state").addFilter(_QuietDirectReads())


@contextlib.asynccontextmanager
async def direct_consumer(kafka: KafkaTarget) -> AsyncIterator[Any]:
    """A consumer of no group, for short reads around a group's consumer."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(**client_options(kafka), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def fetch_from(consumer: Any, starts: Mapping[Any, int], *, through: Mapping[Any, int] | None = None,
                     timeout: float = 10.0) -> dict[Any, list[Any]]:
    """The records of each partition from its start offset.

    With `through`, up to the fetch that reaches that offset (a fetch returns whole batches, so
    records past it may come too; TimeoutError if `timeout` seconds pass with no record
    before it is reached); without, until a fetch at every partition's end comes back empty.
    """
    found: dict[Any, list[Any]] = {tp: [] for tp in starts}
    waiting = set(starts) if through is None else {tp for tp in starts if through[tp] >= starts[tp]}
    token = DIRECT_READ.set(True)
    try:
        consumer.assign(list(waiting))
    finally:
        DIRECT_READ.reset(token)
    for tp in waiting:
        consumer.seek(tp, starts[tp])
    deadline = time.monotonic() + timeout
    while waiting and time.monotonic() < deadline:
        batches = await consumer.getmany(*waiting, timeout_ms=500 if through is not None else 200)
        if through is None and not batches:
            break
        if batches:
            deadline = time.monotonic() + timeout  # a long read goes on while records come
        for tp, records in batches.items():
            found[tp].extend(records)
            if through is not None and records and records[-1].offset >= through[tp]:
                waiting.discard(tp)
    if through is not None and waiting:
        raise TimeoutError("could not read " + ", ".join(
            f"{tp.topic}[{tp.partition}] through offset {through[tp]}" for tp in sorted(waiting)))
    return found


async def _last_batch(consumer: Any, tps: list[Any], timeout: float) -> tuple[dict[Any, int], dict[Any, list[Any]]]:
    """Each partition's reported end offset, and its records from that end less one to its true end."""
    ends = await consumer.end_offsets(tps)
    starts = {tp: end - 1 for tp, end in ends.items() if end > 0}
    return ends, await fetch_from(consumer, starts, through=starts, timeout=timeout)


async def last_batches(kafka: KafkaTarget, partitions: list[tuple[str, int]], timeout: float = 10.0
                       ) -> dict[tuple[str, int], tuple[list[tuple[bytes | None, bytes | None]], int]]:
    """The records (key, value) from each partition's reported end offset less one to its true end,
    with how many of them lie at or past the reported end.

    Some brokers (Tansu 0.6) report a partition's end offset as the start of its last record
    batch plus one; a fetch from that offset returns the whole batch, and so the records the
    reported end leaves out. With a broker that reports the true end this is the last record
    alone, and none lies past the end.
    """
    from aiokafka import TopicPartition

    tps = {TopicPartition(topic, partition): (topic, partition) for topic, partition in partitions}
    async with direct_consumer(kafka) as consumer:
        ends, found = await _last_batch(consumer, list(tps), timeout)
    return {name: ([(r.key, r.value) for r in found.get(tp, [])],
                   sum(1 for r in found.get(tp, []) if r.offset >= ends[tp])) for tp, name in tps.items()}


async def true_ends(kafka: KafkaTarget, partitions: list[tuple[str, int]], timeout: float = 2.0
                    ) -> dict[tuple[str, int], int]:
    """Each partition's true end offset: one past the last record of the batch its reported end
    falls in (the reported end itself on a broker that reports true ends). TimeoutError when a
    partition's last record cannot be read within `timeout` seconds."""
    from aiokafka import TopicPartition

    tps = {TopicPartition(topic, partition): (topic, partition) for topic, partition in partitions}
    async with direct_consumer(kafka) as consumer:
        ends, found = await _last_batch(consumer, list(tps), timeout)
    return {name: max([ends[tp], *(r.offset + 1 for r in found.get(tp, []))]) for tp, name in tps.items()}


async def read_range(kafka: KafkaTarget, topic: str, partition: int, start: int, end: int, timeout: float = 30.0
                     ) -> list[tuple[int, bytes | None, bytes]]:
    """The records (offset, key, value) of one partition from `start` up to `end` (excluded)."""
    from aiokafka import TopicPartition

    tp = TopicPartition(topic, partition)
    async with direct_consumer(kafka) as consumer:
        found = await fetch_from(consumer, {tp: start}, through={tp: end - 1}, timeout=timeout)
    return [(r.offset, r.key, r.value or b"") for r in found[tp] if r.offset < end]


async def partition_bounds(kafka: KafkaTarget, topic: str, partition: int) -> tuple[int, int]:
    """A partition's start offset and (reported) end offset."""
    from aiokafka import TopicPartition

    tp = TopicPartition(topic, partition)
    async with direct_consumer(kafka) as consumer:
        starts = await consumer.beginning_offsets([tp])
        ends = await consumer.end_offsets([tp])
    return starts[tp], ends[tp]


async def records_after(kafka: KafkaTarget, starts: Mapping[Any, int], timeout: float = 10.0
                        ) -> dict[Any, list[Any]]:
    """The records (aiokafka's) of each topic partition from its start offset to its end, of any topics."""
    async with direct_consumer(kafka) as consumer:
        return await fetch_from(consumer, starts, timeout=timeout)


async def read_after(kafka: KafkaTarget, topic: str, starts: Mapping[int, int], timeout: float = 10.0
                     ) -> dict[int, list[tuple[int, bytes | None, bytes, int]]]:
    """The records (offset, key, value, timestamp in ms) of each partition of one topic from its start offset to
    its end."""
    from aiokafka import TopicPartition

    tps = {TopicPartition(topic, partition): partition for partition in starts}
    found = await records_after(kafka, {tp: starts[p] for tp, p in tps.items()}, timeout=timeout)
    return {tps[tp]: [(r.offset, r.key, r.value or b"", r.timestamp) for r in records] for tp, records in found.items()}
