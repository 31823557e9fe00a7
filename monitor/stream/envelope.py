"""What travels between the worker's two stages, and what the dead-letter topic keeps.

The intake stage reads the input topics (keyed by ticket, depot or outlet) and forwards
each exporter's messages, untouched, to the internal topic keyed by exporter, so that one
worker holds everything about an exporter. Many messages travel in one envelope: a JSON
header line naming where each came from, then their original bytes one after another.
Faust's cost is per message, so an envelope costs the judging stage about what one input
message costs the intake stage.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from monitor.obligations.timebase import Micros


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an input message was read: enough to find it again, and to dead-letter it whole."""

    topic: str  # short name: service-tickets, parts-stock, outlet-status, registry
    partition: int
    offset: int
    key: bytes | None


@dataclass(slots=True)
class Envelope:
    """Input messages of one exporter (or registrations for every partition), with the sender's
    view of event time: `watermark` is the event time every input partition it reads has passed
    while it is catching up on a backlog, None when it is caught up."""

    sender: str
    watermark: Micros | None = None
    catching_up: bool = False
    origins: list[Origin] = field(default_factory=list)
    values: list[bytes] = field(default_factory=list)

    def add(self, origin: Origin, value: bytes) -> None:
        self.origins.append(origin)
        self.values.append(value)

    def size(self) -> int:
        return sum(len(v) for v in self.values)

    def encode(self) -> bytes:
        header = {
            "s": self.sender, "w": self.watermark, "c": self.catching_up,
            "r": [[o.topic, o.partition, o.offset, None if o.key is None else o.key.decode("latin-1"), len(v)]
                  for o, v in zip(self.origins, self.values, strict=True)],
        }
        return b"".join((orjson.dumps(header), b"\n", *self.values))

    @classmethod
    def decode(cls, data: bytes) -> Envelope:
        newline = data.index(b"\n")
        header = orjson.loads(data[:newline])
        envelope = cls(header["s"], header["w"], header["c"])
        position = newline + 1
        for topic, partition, offset, key, length in header["r"]:
            envelope.origins.append(Origin(topic, partition, offset, None if key is None else key.encode("latin-1")))
            envelope.values.append(data[position : position + length])
            position += length
        return envelope

    def __iter__(self) -> Iterator[tuple[Origin, bytes]]:
        return zip(self.origins, self.values, strict=True)


def rejected(origin: Origin, value: bytes, reason: str, errors: list[dict[str, Any]], *, prefix: str,
             now: datetime | None = None) -> dict[str, Any]:
    """The RejectedMessage document for a message that cannot be used: the original bytes (text
    when they are UTF-8, base64 otherwise), where it was read, and why it was refused."""
    try:
        text, encoding = value.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(value).decode("ascii"), "base64"
    key = None
    if origin.key is not None:
        try:
            key = origin.key.decode("utf-8")
        except UnicodeDecodeError:
            key = base64.b64encode(origin.key).decode("ascii")
    return {
        "reason": reason, "errors": errors, "topic": prefix + origin.topic, "partition": origin.partition,
        "offset": origin.offset, "key": key, "value": text, "value_encoding": encoding,
        "rejected_at": (now or datetime.now(UTC)).isoformat().replace("+00:00", "Z"),
    }
