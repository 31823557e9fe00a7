"""Faust's Kafka producer, made to keep the metadata of every topic it sends to.

aiokafka's client tracks the topics it asks the brokers' metadata for, and starts with none
tracked, which asks for every topic. A send to a topic that metadata already holds does not
track it; a send to one it does not hold (a topic created since, like a table's changelog
that Faust creates as the worker starts) tracks that one, and from then on each metadata
refresh asks for the tracked topics alone and replaces what the client knew. The topics sent
to before were then no longer known: their batches still waiting found no leader, and the
producer asked for metadata again and again (a busy loop) without ever asking for them. A
flush waited on those batches, and with it the commit before it and the rebalance waiting
on the commit: the worker stood still, for good, a second after it began.

Here every topic is tracked from its first send, so the metadata always holds every topic a
batch may be waiting for.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka


class TrackingProducer(faust_aiokafka.Producer):
    """The worker's producer: each topic it sends to stays in its client's metadata."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tracked: set[str] = set()

    async def send(self, topic: str, *args: Any, **kwargs: Any) -> Any:
        if topic not in self.tracked:
            self._ensure_producer().client.add_topic(topic)  # its metadata is asked for from now on
            self.tracked.add(topic)
        return await super().send(topic, *args, **kwargs)


def use_tracking_producer(app: Any) -> None:
    """Have `app` (not started yet) produce with TrackingProducer."""
    app.transport.Producer = TrackingProducer
