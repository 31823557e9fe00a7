"""Faust's Kafka consumer, made to read every record of the worker's stream topics across a rebalance.

When a rebalance suspends the flow, Faust drops the messages it was handing over to the
agents and, once its tables are recovered, seeks each stream partition back to its committed
offset, to read them again. Two things in that went wrong, each losing records for good
(nothing of theirs reached the internal topic):

- aiokafka's `seek_to_committed` seeks only to a committed offset above 0: a partition with
  nothing committed yet (a new topic, or one this consumer group has never read) kept its
  fetch position, past the dropped messages. Here such a partition is sought to its
  beginning (its first offset still on the broker), as `auto_offset_reset` says.
- Faust resumes fetching the stream partitions before it seeks them, and the seek can take
  seconds while a broker is away. Records
  read meanwhile moved Faust's record of how far each partition was read, and when the
  seek then moved the partition back, Faust took the records it read again for ones it had
  already handed over and dropped them, and some it had not handed over with them. Here the
  stream partitions stay paused after a rebalance until the seek is done.

And aiokafka asks the group coordinator for committed offsets one partition at a time: 1.5 s
for the judging stage's 24 partitions and changelogs on the embedded broker, on every start
and rebalance. Here they are asked in one request.

With static membership (MONITOR_INSTANCE_ID), Apache Kafka hands a restarted worker the
assignment its former run was given, which names the former run's address; Faust's assignor
asserts that the address is its own, and its failed assertion stops the consumer's group
coordination for good. `InstanceAssignor` takes such an assignment as its own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from faust.assignor import PartitionAssignor
from faust.assignor.client_assignment import ClientMetadata
from faust.transport.consumer import ensure_TPset
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from yarl import URL

log = logging.getLogger(__name__)


class StreamConsumer(faust_aiokafka.Consumer):
    """The worker's consumer; `stream_topics` are the topics its agents read (not changelogs,
    whose reading Faust's recovery does from offsets of its own)."""

    stream_topics: frozenset[str] = frozenset()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._seek_due = False  # a rebalance assigned partitions that are not sought yet
        self._held: set[TP] = set()  # stream partitions to resume once they are sought
        self.sought: dict[TP, int | None] = {}  # each stream partition's committed offset at its last seek

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        self._seek_due = True
        await super().on_partitions_assigned(assigned, generation_id)

    def resume_partitions(self, tps: Iterable[TP]) -> None:
        tpset = ensure_TPset(tps)
        if self._seek_due:
            held = {tp for tp in tpset if tp.topic in self.stream_topics}
            self._held |= held
            tpset -= held
        super().resume_partitions(tpset)

    async def perform_seek(self) -> None:
        held = self._held  # the stream partitions recovery resumed: fetched only once sought
        try:
            await super().perform_seek()
        finally:
            if held:
                self._seek_due, self._held = False, set()
                super().resume_partitions(held & ensure_TPset(self.assignment()))

    async def seek_to_committed(self) -> Mapping[TP, int]:
        thread: Any = self._thread
        committed = await thread.call_thread(_seek_all_to_committed, thread._ensure_consumer())
        stream = {tp: offset for tp, offset in committed.items() if tp.topic in self.stream_topics}
        self.sought.update({TP(tp.topic, tp.partition): offset for tp, offset in stream.items()})
        never = [tp for tp, offset in stream.items() if not offset]
        if never:
            log.debug("reading %d partitions with no committed offset from their start", len(never))
            await self._thread.seek_to_beginning(*never)
        return committed


async def _seek_all_to_committed(consumer: Any) -> dict[Any, int | None]:
    """aiokafka's `seek_to_committed` for every assigned partition, with their committed offsets
    asked in one request rather than one round trip per partition (seconds, for the judging
    stage's partitions and changelogs, on every start and rebalance). Runs in the consumer's
    thread, on aiokafka's own consumer."""
    partitions = consumer._subscription.assigned_partitions()
    found = await consumer._coordinator.fetch_committed_offsets(partitions) if partitions else {}
    committed: dict[Any, int | None] = {}
    for tp in partitions:
        offset = found[tp].offset if tp in found else None
        committed[tp] = None if offset is None or offset == -1 else offset
        if offset is not None and offset > 0:
            consumer._fetcher.seek_to(tp, offset)
    return committed


def use_stream_consumer(app: Any, topics: frozenset[str]) -> None:
    """Have `app` (not started yet) consume with StreamConsumer, for the agents' `topics`."""
    consumer_class = type("StreamConsumer", (StreamConsumer,), {"stream_topics": topics})
    transport = app.transport
    transport.Consumer = consumer_class


class InstanceAssignor(PartitionAssignor):
    """Faust's assignor for a worker of a fixed instance id (Kafka static membership): an
    assignment made for this instance's former run, at another address (its web port, or its
    intake's, is chosen at each start), is taken as this run's."""

    _former_url: str | None = None

    @property
    def _url(self) -> URL:
        return URL(self._former_url) if self._former_url is not None else self.app.conf.canonical_url

    def on_assignment(self, assignment: Any) -> None:
        former = ClientMetadata.loads(self._decompress(assignment.user_data)).url
        if former != str(self.app.conf.canonical_url):
            log.info("given the assignment of this instance's former run (at %s): taken as its own", former)
            self._former_url = former
        try:
            super().on_assignment(assignment)
        finally:
            self._former_url = None
