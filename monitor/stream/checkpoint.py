"""What a worker keeps durably about one exporter: its compact live state, checkpointed.

A worker does not keep the events it has read. Every `checkpoint_seconds` it writes each
changed exporter's state (open ticket cycles, settled counts and response times, stock per
depot and part, outlets' last status, its clock, and what late data within the reorder
horizon needs) to its table, with the offset of the last envelope that state reflects; the
envelopes judged since are kept beside it until the next checkpoint covers them. A worker
taking over loads the checkpoint and judges again only those envelopes.

What was published about the exporter is not part of it: the published-alerts table is the
record of that, written before each alert is sent.

A checkpoint is written in two alternating slots, each in chunks small enough for any broker's
message limit, so that a worker that dies half-way through writing one leaves the other, whole.
The envelopes a checkpoint covers are deleted only once it is written whole.
"""

from __future__ import annotations

import pickle
import struct
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from monitor.contracts.registry import ExporterRegistration
from monitor.obligations.policy import PolicyBook
from monitor.stream.live import LiveExporter, Published

CHUNK_BYTES = 256 * 1024  # well under the default message limit of Kafka (1 MiB) and of its clients
SLOTS = (b"a", b"b")
_HEADER = struct.Struct(">qII")  # offset covered, chunk index, chunk count
# shared with the live network, not the exporter's own: restored to the taking worker's objects
_NOT_KEPT = ("registry", "policy", "published", "_published_tickets")
# Bump when what a checkpoint holds changes (an attribute of LiveExporter or of the objects it
# holds added, removed or changed in meaning): a worker refuses a checkpoint of another format
# rather than judge on without the exporter's history.
FORMAT = 1


class FormatRefused(ValueError):
    """A checkpoint written in a format this worker does not read."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A whole checkpoint read back: the exporter's state as of envelope `offset`."""

    slot: bytes
    offset: int
    blob: bytes


def freeze(live: LiveExporter) -> bytes:
    """The exporter's state, compressed, without the registry and policy it shares."""
    state = {k: v for k, v in vars(live).items() if k not in _NOT_KEPT}
    engines = [live.engine, *(kept.engine for kept in live.checkpoints)]
    shared = [(engine.registry, engine.policy) for engine in engines]
    try:  # detached while pickled (no await in between): a plain pickle is several times faster than one
        for engine in engines:  # that looks up every object it writes
            engine.registry = engine.policy = None  # type: ignore[assignment]
        data = pickle.dumps((FORMAT, state), protocol=pickle.HIGHEST_PROTOCOL)
    finally:
        for engine, (registry, policy) in zip(engines, shared, strict=True):
            engine.registry, engine.policy = registry, policy
    return zlib.compress(data, 1)


def thaw(blob: bytes, registry: Mapping[str, ExporterRegistration], policy: PolicyBook,
         published: Published) -> LiveExporter:
    """The exporter as frozen, sharing `registry` and `policy`, with what was published about it
    since (the published table's record, which may be ahead of the checkpoint).

    FormatRefused when the checkpoint was written in another format."""
    # written by a worker of this deployment to its own table, never by another party
    version, state = pickle.loads(zlib.decompress(blob))  # noqa: S301
    if version != FORMAT:
        raise FormatRefused(f"its checkpoint was written in format {version}, this worker reads {FORMAT}")
    live = LiveExporter.__new__(LiveExporter)
    vars(live).update(state)
    live.registry, live.policy, live.published, live._published_tickets = registry, policy, published, None
    for engine in (live.engine, *(kept.engine for kept in live.checkpoints)):
        engine.registry, engine.policy = registry, policy
    live.taken_over()
    return live


def chunks(slot: bytes, offset: int, blob: bytes) -> list[tuple[bytes, bytes]]:
    """(key suffix, value) records of one checkpoint in `slot`."""
    parts = [blob[i : i + CHUNK_BYTES] for i in range(0, len(blob), CHUNK_BYTES)] or [b""]
    return [(b"c%s%d" % (slot, index), _HEADER.pack(offset, index, len(parts)) + part)
            for index, part in enumerate(parts)]


def is_chunk(suffix: bytes) -> bool:
    return suffix[:1] == b"c"


def latest(records: Iterable[tuple[bytes, bytes]]) -> Checkpoint | None:
    """The most recent whole checkpoint among an exporter's chunk records (key suffix, value)."""
    slots: dict[bytes, list[tuple[int, int, int, bytes]]] = {}
    for suffix, value in records:
        offset, index, count = _HEADER.unpack_from(value)
        slots.setdefault(suffix[1:2], []).append((offset, index, count, value[_HEADER.size :]))
    best: Checkpoint | None = None
    for slot, parts in slots.items():
        parts.sort(key=lambda p: p[1])
        offset, _, count, _ = parts[0]
        whole = [p for p in parts if p[0] == offset and p[2] == count]
        if [p[1] for p in whole] != list(range(count)):
            continue  # written half-way when its worker stopped
        if best is None or offset > best.offset:
            best = Checkpoint(slot, offset, b"".join(p[3] for p in whole))
    return best


def stale_chunks(slot: bytes, written: int, before: int) -> list[bytes]:
    """Key suffixes of chunks left in `slot` by a longer checkpoint than the one just written."""
    return [b"c%s%d" % (slot, index) for index in range(written, before)]
