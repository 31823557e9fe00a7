"""Faust's Kafka consumer, reading a never-committed partition from its start after a rebalance.

When a rebalance suspends the flow, Faust drops the messages it was handing over to the
agents and, once the partitions are assigned again, seeks each one back to its committed
offset, to read them again. aiokafka's `seek_to_committed` seeks only to a committed offset
above 0: a partition with nothing committed yet (a new topic, or one this consumer group has
never read) keeps its fetch position, past the dropped messages. Records produced in the
seconds a worker joins or leaves the group were lost that way, for good: nothing of theirs
reached the internal topic. Here such a partition of the worker's own stream topics is sought
to its beginning instead (its first offset still on the broker), as `auto_offset_reset` says.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

log = logging.getLogger(__name__)


class StreamConsumer(faust_aiokafka.Consumer):
    """The worker's consumer; `stream_topics` are the topics its agents read (not changelogs,
    whose reading Faust's recovery does from offsets of its own)."""

    stream_topics: frozenset[str] = frozenset()

    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed = await super().seek_to_committed()
        never = sorted((tp for tp, offset in committed.items() if not offset and tp.topic in self.stream_topics),
                       key=lambda tp: (tp.topic, tp.partition))
        if never:
            log.debug("reading %d partitions with no committed offset from their start", len(never))
            await self._thread.seek_to_beginning(*never)
        return committed


def reading_from_start(app: Any, topics: frozenset[str]) -> None:
    """Have `app` (not started yet) consume with StreamConsumer, for the agents' `topics`."""
    consumer_class = type("StreamConsumer", (StreamConsumer,), {"stream_topics": topics})
    transport = app.transport
    transport.Consumer = consumer_class
