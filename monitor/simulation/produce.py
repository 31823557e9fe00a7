"""A synthetic exporter network produced onto Kafka: `monitor simulate`.

Two halves. `simulated_records` turns a plan into the exact Kafka records to send (topic,
key, value, event time): the registry first, then the network's events keyed as CONTRACT.md
says, a small share of them replaced by bad messages. It is pure: the same plan gives the
same records, byte for byte. `produce` sends them with aiokafka, paced to a rate and, when
asked, to the events' own times, and stops cleanly on request.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import islice
from typing import Any, NamedTuple

import orjson

from monitor.kafka import KafkaTarget, bootstrap_of, client_options
from monitor.simulation.network import TOPIC_OUTLETS, TOPIC_STOCK, TOPIC_TICKETS, NetworkSpec, events, registrations

log = logging.getLogger(__name__)

TOPIC_REGISTRY = "registry"
TOPICS: tuple[str, ...] = (TOPIC_REGISTRY, TOPIC_TICKETS, TOPIC_STOCK, TOPIC_OUTLETS)  # short names, in order
# CONTRACT.md, Kafka topics: the field each input topic is partitioned by
KEY_FIELDS: dict[str, str] = {TOPIC_TICKETS: "ticket_id", TOPIC_STOCK: "depot_id", TOPIC_OUTLETS: "outlet_id"}

# The kinds of bad message, and the topics each applies to (a VIN only exists on tickets).
MALFORMED_KINDS: tuple[str, ...] = (
    "not_json", "binary", "json_array", "missing_field", "wrong_type", "naive_timestamp", "bad_vin",
    "oversized", "unknown_market",
)
_KINDS_BY_TOPIC: dict[str, tuple[str, ...]] = {
    TOPIC_TICKETS: MALFORMED_KINDS,
    TOPIC_STOCK: tuple(kind for kind in MALFORMED_KINDS if kind != "bad_vin"),
    TOPIC_OUTLETS: tuple(kind for kind in MALFORMED_KINDS if kind != "bad_vin"),
}
_REQUIRED: dict[str, tuple[str, ...]] = {
    TOPIC_TICKETS: ("event_id", "type", "ticket_id", "exporter_id", "market", "vin", "occurred_at"),
    TOPIC_STOCK: ("event_id", "exporter_id", "market", "depot_id", "lines", "occurred_at"),
    TOPIC_OUTLETS: ("event_id", "exporter_id", "outlet_id", "market", "status", "occurred_at"),
}
# Codes people write for a country that ISO 3166-1 alpha-2 does not have (GB, not UK; EU is
# no country; XK is user-assigned; AN was withdrawn in 2011), and a code for nowhere.
_UNKNOWN_MARKETS = ("UK", "EU", "XK", "AN", "ZZ")
_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_OVERSIZED_BYTES = (256 * 1024, 900_000)  # under the 1 MiB a broker and producer accept by default

_DAY = 86_400


@dataclass(frozen=True)
class SimulationPlan:
    """What to produce and how fast.

    `rate` caps records per second (None: as fast as the broker takes them). With `live`,
    no event is produced before its `occurred_at`: the past goes out at `rate`, then events
    follow the clock until the end of the simulated period. Without it the run ends at the
    first event still in the future. `limit` stops after that many records (registrations
    included).
    """

    spec: NetworkSpec = field(default_factory=NetworkSpec)
    rate: float | None = None
    live: bool = False
    malformed_share: float = 0.001
    register: bool = True
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.rate is not None and self.rate <= 0:
            raise ValueError(f"rate must be positive, or None for as fast as possible (got {self.rate})")
        if not 0 <= self.malformed_share <= 1:
            raise ValueError(f"malformed_share must be between 0 and 1 (got {self.malformed_share})")
        if self.limit is not None and self.limit < 0:
            raise ValueError(f"limit cannot be negative (got {self.limit})")

    def period_end(self) -> float:
        """Seconds since the epoch at the end of the last simulated day."""
        return self.spec.first_instant().timestamp() + self.spec.days * _DAY


def period_ending_today(days: int, today: date | None = None) -> date:
    """The first day of a `days`-day period whose last day is today (UTC)."""
    today = today or datetime.now(UTC).date()
    return today - timedelta(days=days - 1)


class SimulatedRecord(NamedTuple):
    """One Kafka record of the simulation; the first four fields are what goes on the wire."""

    topic: str  # short name: service-tickets, parts-stock, outlet-status or registry
    key: bytes
    value: bytes
    occurred_at: float  # seconds since the epoch; for registrations, the first simulated instant
    malformed: str | None = None  # the kind of bad message this is, if it is one
    grey_market: bool = False  # a ticket opened on a VIN of a brand its exporter may not export


def simulated_records(plan: SimulationPlan) -> Iterator[SimulatedRecord]:
    """Every record the plan produces, in order: registrations (when `plan.register`), then
    the events of `events(plan.spec)` with their "topic" field removed, serialised with orjson.

    A `plan.malformed_share` of events is replaced, same key and topic, by a bad message of
    one of MALFORMED_KINDS. Those choices come from their own seeded stream, so every event
    that is not replaced is byte for byte what it would be with no bad messages at all. The
    same plan always gives the same records; `plan.limit` cuts the sequence short.
    """
    records = _records(plan)
    return islice(records, plan.limit) if plan.limit is not None else records


def _records(plan: SimulationPlan) -> Iterator[SimulatedRecord]:
    spec = plan.spec
    first_instant = spec.first_instant().timestamp()
    exporters = registrations(spec)
    own_wmis = {reg["exporter_id"]: frozenset(wmi for brand in reg["brands"] for wmi in brand["wmi"])
                for reg in exporters}
    dumps = orjson.dumps
    if plan.register:
        for reg in exporters:
            yield SimulatedRecord(TOPIC_REGISTRY, reg["exporter_id"].encode(), dumps(reg), first_instant)
    share = plan.malformed_share
    bad = random.Random(f"{spec.seed}/malformed")
    draw = bad.random
    parse = datetime.fromisoformat
    for event in events(spec):
        topic = event.pop("topic")  # each event is a fresh dict: ours to change
        key = event[KEY_FIELDS[topic]].encode()
        at = parse(event["occurred_at"]).timestamp()
        if share and draw() < share:
            kind = bad.choice(_KINDS_BY_TOPIC[topic])
            yield SimulatedRecord(topic, key, _malformed(bad, kind, topic, event), at, kind)
            continue
        grey = (topic == TOPIC_TICKETS and event["type"] == "opened"
                and event["vin"][:3] not in own_wmis[event["exporter_id"]])
        yield SimulatedRecord(topic, key, dumps(event), at, None, grey)


def _malformed(rng: random.Random, kind: str, topic: str, event: dict[str, Any]) -> bytes:
    """The event spoilt in the way `kind` names; every variant is rejected by the contract models."""
    if kind == "not_json":  # a message cut off half-way: UTF-8 text, but not JSON
        good = orjson.dumps(event)
        return good[: 1 + int(rng.random() * (len(good) - 1))]
    if kind == "binary":  # 0xFF never occurs in UTF-8
        return b"\xff" + rng.randbytes(rng.randint(7, 511))
    if kind == "json_array":  # a batch where one object was expected
        return orjson.dumps([event])
    if kind == "missing_field":
        del event[rng.choice(_REQUIRED[topic])]
    elif kind == "wrong_type":
        if topic == TOPIC_STOCK:
            line = rng.choice(event["lines"])
            quantity = line["quantity_on_hand"]
            line["quantity_on_hand"] = _NUMBER_WORDS[quantity] if quantity < 10 else "lots"
        elif topic == TOPIC_OUTLETS:
            event["capabilities"] = ",".join(event["capabilities"]) or "none"  # a string, not a list
        else:
            event["exporter_id"] = int(event["exporter_id"].rpartition("-")[2])  # a number, not a string
    elif kind == "naive_timestamp":
        text = event["occurred_at"]
        naive = text[:-1] if text.endswith("Z") else text[:-6]
        event["occurred_at"] = naive.replace("T", " ") if rng.random() < 0.3 else naive
    elif kind == "bad_vin":
        vin = event["vin"]
        variant = rng.randrange(3)
        if variant == 0:  # a letter ISO 3779 leaves out, where a digit or letter was misread
            position = rng.randrange(3, 17)
            event["vin"] = vin[:position] + rng.choice("IOQ") + vin[position + 1:]
        elif variant == 1:  # a character dropped
            position = rng.randrange(17)
            event["vin"] = vin[:position] + vin[position + 1:]
        else:
            event["vin"] = vin.lower()
    elif kind == "oversized":  # a runaway field: hundreds of kilobytes where an identifier belongs
        size = rng.randint(*_OVERSIZED_BYTES)
        if topic == TOPIC_STOCK:
            line = event["lines"][0]
            part = line["part_number"]
            line["part_number"] = ";".join([part] * (size // (len(part) + 1)))
        else:
            event["event_id"] = event["event_id"] + "-" + "0" * size
    elif kind == "unknown_market":
        event["market"] = rng.choice(_UNKNOWN_MARKETS)
    else:
        raise ValueError(f"unknown kind of bad message: {kind!r}")
    return orjson.dumps(event)


# ---- pacing -----------------------------------------------------------------------------------------


class Pacer:
    """Spaces sends at `rate` per second with no drift.

    The n-th send is due at origin + n / rate, computed from a fixed origin, so sleeping late
    or rounding never accumulates. A send may go up to `quantum` seconds early: the caller
    sleeps once per quantum's worth of sends, not once per send. Falling behind by more
    than `burst` seconds (a stalled broker, a live run waiting for the clock) forgives the
    rest of the debt: at most `burst` seconds' worth of sends then go at once, like a token
    bucket of that size.
    """

    def __init__(self, rate: float, *, quantum: float = 0.005, burst: float = 0.1) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive (got {rate})")
        self.rate = rate
        self.quantum = quantum
        self.burst = burst
        self._interval = 1.0 / rate
        self._origin: float | None = None
        self._base = 0

    def due(self, sent: int) -> float:
        """When send number `sent` (counting from 0) is due, on the clock `delay` was given."""
        if self._origin is None:
            raise RuntimeError("no send has been paced yet")
        return self._origin + (sent - self._base) * self._interval

    def delay(self, sent: int, now: float) -> float:
        """Seconds to wait before send number `sent` may go; 0.0 means now."""
        if self._origin is None:
            self._origin, self._base = now, sent
        elif now - self.due(sent) > self.burst:
            self._origin, self._base = now - self.burst, sent
        wait = self.due(sent) - now
        return wait if wait > self.quantum else 0.0


# ---- producing --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProduceStats:
    """What a run produced so far (or in all, once `produce` returns).

    `per_topic` counts records handed to the producer by short topic name (registrations
    included, bad messages included); `failed` the ones the broker never acknowledged.
    `first_occurred_at`/`last_occurred_at` span the events produced (not registrations).
    `ended` says why the run stopped: done (the whole period), limit, now (the next event
    lies in the future and the run is not live), stopped (asked to) or failed (the broker
    refused or vanished).
    """

    per_topic: Mapping[str, int]
    malformed: int = 0
    malformed_by_kind: Mapping[str, int] = field(default_factory=dict)
    grey_market_tickets: int = 0
    first_occurred_at: datetime | None = None
    last_occurred_at: datetime | None = None
    elapsed_seconds: float = 0.0
    failed: int = 0
    idempotent: bool = False
    ended: str = "running"

    @property
    def produced(self) -> int:
        """Records produced, every topic together."""
        return sum(self.per_topic.values())

    @property
    def events_per_second(self) -> float:
        """Records produced per second of the run."""
        return self.produced / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0

    def describe(self) -> str:
        """One line for a person: counts per topic, rate, simulated time reached, bad messages."""
        topics = ", ".join(f"{topic} {self.per_topic[topic]:,}" for topic in TOPICS if topic in self.per_topic)
        reached = (self.last_occurred_at.strftime("%Y-%m-%d %H:%M:%SZ") if self.last_occurred_at
                   else "none yet")
        text = (f"{self.produced:,} records ({topics or 'none'}) in {self.elapsed_seconds:,.1f} s, "
                f"{self.events_per_second:,.0f}/s; simulated time reached {reached}; "
                f"{self.malformed:,} bad, {self.grey_market_tickets:,} grey-market tickets")
        return text + (f"; {self.failed:,} NOT delivered" if self.failed else "")


class _Tally:
    """Running counts of a produce run, kept cheap to update per record."""

    def __init__(self) -> None:
        self.per_topic: Counter[str] = Counter()
        self.malformed: Counter[str] = Counter()
        self.grey = 0
        self.first: float | None = None
        self.last: float | None = None
        self.failed = 0
        self.first_error: BaseException | None = None
        self.started = time.monotonic()

    def delivered(self, future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            self.failed += 1
        elif (error := future.exception()) is not None:
            self.failed += 1
            self.first_error = self.first_error or error

    def stats(self, *, idempotent: bool, ended: str = "running") -> ProduceStats:
        def moment(epoch: float | None) -> datetime | None:
            return None if epoch is None else datetime.fromtimestamp(epoch, UTC)

        return ProduceStats(
            per_topic=dict(self.per_topic), malformed=sum(self.malformed.values()),
            malformed_by_kind=dict(self.malformed), grey_market_tickets=self.grey,
            first_occurred_at=moment(self.first), last_occurred_at=moment(self.last),
            elapsed_seconds=time.monotonic() - self.started, failed=self.failed, idempotent=idempotent,
            ended=ended,
        )


# Throughput: up to 1 MiB per partition batch (a bad message can be ~900 kB on its own), a few
# milliseconds of linger so batches fill when the stream is fast and stay prompt when it is live.
_PRODUCER_SETTINGS: dict[str, Any] = {
    "acks": "all", "linger_ms": 5, "max_batch_size": 1024 * 1024, "max_request_size": 1024 * 1024,
    "request_timeout_ms": 30_000,
}
_PROGRESS_SECONDS = 1.0
_YIELD_EVERY = 1024  # records between explicit yields to the event loop (stop, progress, sender)
_CLOCK_SLICE = 1.0  # longest single sleep while waiting for the clock in a live run


async def _broker_grants_idempotence(kafka: KafkaTarget) -> bool:
    """Whether the first reachable bootstrap broker lists InitProducerId among its APIs and
    actually grants a producer id (some Kafka-compatible brokers list it, then answer with an error)."""
    from aiokafka.conn import create_conn
    from aiokafka.errors import KafkaError
    from aiokafka.protocol.admin import ApiVersionRequest
    from aiokafka.protocol.transaction import InitProducerIdRequest

    security = client_options(kafka)
    bootstrap = str(security.pop("bootstrap_servers"))
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            conn = await create_conn(host.strip("[]"), int(port), **security)
        except (TimeoutError, KafkaError, OSError, ValueError) as exc:
            log.debug("cannot ask %s about idempotence: %r", address, exc)
            continue
        try:
            versions = await conn.send(ApiVersionRequest())
            if not any(api_key == InitProducerIdRequest.API_KEY for api_key, _, _ in versions.api_versions):
                return False
            granted = await conn.send(InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=60_000))
        except (TimeoutError, KafkaError, OSError) as exc:
            log.debug("cannot ask %s about idempotence: %r", address, exc)
            continue
        finally:
            conn.close()
        return bool(granted.error_code == 0)
    return False


async def _start_producer(kafka: KafkaTarget) -> tuple[Any, bool]:
    """A started producer, and whether it is idempotent: it is when the broker supports it."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    if await _broker_grants_idempotence(kafka):
        producer = AIOKafkaProducer(**client_options(kafka), enable_idempotence=True, **_PRODUCER_SETTINGS)
        try:
            await producer.start()
        except KafkaError as exc:
            log.warning("broker at %s refused an idempotent producer (%r); producing without", bootstrap_of(kafka),
                        exc)
            await producer.stop()
        else:
            return producer, True
    producer = AIOKafkaProducer(**client_options(kafka), **_PRODUCER_SETTINGS)
    await producer.start()
    return producer, False


async def _sleep(seconds: float, stop: asyncio.Event | None) -> bool:
    """Sleep, waking early if `stop` is set; False when it was."""
    if stop is None:
        await asyncio.sleep(seconds)
        return True
    if stop.is_set():
        return False
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return True
    return False


async def produce(plan: SimulationPlan, kafka: KafkaTarget, prefix: str = "aftersales.",
                  progress: Callable[[ProduceStats], None] | None = None,
                  stop: asyncio.Event | None = None, *, partitions: int = 8, replication: int = 1) -> ProduceStats:
    """Produce the plan's records (`simulated_records`) onto the topics named with `prefix`.

    `kafka` is the bootstrap servers, or the client options of `monitor.kafka.kafka_client_options`.
    Creates the topics if they are missing, with `partitions` partitions and `replication`
    replicas. Every record is acknowledged by all in-sync replicas (acks=all), and the producer
    is idempotent when the broker grants producer ids (`ProduceStats.idempotent` says whether
    it was). Each key goes to the partition Kafka's default partitioner gives it, so consumers
    and Faust agree. Sends at most `plan.rate` records a second (on a schedule that does not
    drift), never an event before its time when `plan.live`, and ends, without `live`, at the
    first event still in the future. Setting `stop` ends the run promptly. Whatever ends it,
    what was handed to the producer is flushed before this returns. `progress` gets the
    running figures about once a second, and the final ones once the run has ended. Failed
    deliveries end the run; they are counted in the result, not raised.
    """
    from aiokafka.errors import KafkaError

    from monitor.stream.topics import TopicNames, ensure_topics

    names = TopicNames.of(prefix)
    await ensure_topics(kafka, names, partitions=partitions, replication=replication)
    topic_names = {TOPIC_TICKETS: names.tickets, TOPIC_STOCK: names.stock, TOPIC_OUTLETS: names.outlets,
                   TOPIC_REGISTRY: names.registry}
    producer, idempotent = await _start_producer(kafka)
    tally = _Tally()
    ended = "done"
    try:
        ended = await _Sender(plan, producer, topic_names, tally, progress, stop, idempotent).run()
    except KafkaError as exc:
        log.error("producing stopped: %r", exc)
        ended = "failed"
    finally:
        await producer.stop()  # waits for every batch handed over to be acknowledged (or to fail)
    if tally.failed:
        log.error("%d records were not delivered; the first error: %r", tally.failed, tally.first_error)
        ended = "failed"
    stats = tally.stats(idempotent=idempotent, ended=ended)
    log.debug("simulation %s: %s", ended, stats.describe())
    if progress is not None:
        progress(stats)  # the last figures, however short the run
    return stats


class _KeyPartitions:
    """Kafka's default partition of a key (murmur2, as the Java client and aiokafka choose it),
    remembered: the same outlets, depots and tickets come back again and again, and aiokafka
    hashes in pure Python, a fifth of the cost of a send."""

    _REMEMBERED = 200_000  # keys per topic before the memory starts afresh

    def __init__(self, partitions: dict[str, list[int]]) -> None:
        self.partitions = partitions
        self.known: dict[str, dict[bytes, int]] = {topic: {} for topic in partitions}

    def __call__(self, topic: str, key: bytes) -> int:
        known = self.known[topic]
        partition = known.get(key)
        if partition is None:
            from aiokafka.partitioner import murmur2

            if len(known) >= self._REMEMBERED:
                known.clear()
            every = self.partitions[topic]
            partition = known[key] = every[(murmur2(key) & 0x7FFFFFFF) % len(every)]
        return partition


class _Sender:
    """The sending loop of `produce`: gates each record on `stop`, the clock and the pacer."""

    def __init__(self, plan: SimulationPlan, producer: Any, topic_names: dict[str, str], tally: _Tally,
                 progress: Callable[[ProduceStats], None] | None, stop: asyncio.Event | None,
                 idempotent: bool) -> None:
        self.plan = plan
        self.producer = producer
        self.topic_names = topic_names
        self.tally = tally
        self.pacer = Pacer(plan.rate) if plan.rate is not None else None
        self.progress = progress
        self.stop = stop
        self.idempotent = idempotent
        self.next_progress = time.monotonic() + _PROGRESS_SECONDS

    def report(self) -> None:
        """Hand the running figures to `progress`, at most once a `_PROGRESS_SECONDS`."""
        if self.progress is not None and (now := time.monotonic()) >= self.next_progress:
            self.next_progress = now + _PROGRESS_SECONDS
            self.progress(self.tally.stats(idempotent=self.idempotent))

    async def until(self, instant: float) -> bool:
        """Wait until the wall clock reaches `instant`; False when `stop` came first."""
        while (ahead := instant - time.time()) > 0:
            self.report()
            if not await _sleep(min(ahead, _CLOCK_SLICE), self.stop):
                return False
        return True

    async def gate(self, record: SimulatedRecord, sent: int) -> str | None:
        """None when `record` may go now (after waiting if need be), else why the run ends."""
        if self.stop is not None and self.stop.is_set():
            return "stopped"
        # the registry is not an event: it goes first, whatever the time
        if record.topic != TOPIC_REGISTRY and record.occurred_at > time.time():
            if not self.plan.live:
                return "now"
            if not await self.until(record.occurred_at):
                return "stopped"
        if self.pacer is not None and (wait := self.pacer.delay(sent, time.monotonic())):
            self.report()
            if not await _sleep(wait, self.stop):
                return "stopped"
        return None

    async def run(self) -> str:
        """Send every record the plan makes, or until something ends the run; returns why it ended."""
        send, delivered, tally, gate = self.producer.send, self.tally.delivered, self.tally, self.gate
        topic_names = self.topic_names
        partition_of = _KeyPartitions({short: sorted(await self.producer.partitions_for(topic))
                                       for short, topic in topic_names.items()})
        per_topic, malformed = tally.per_topic, tally.malformed
        sent = 0
        for record in simulated_records(self.plan):
            if (ended := await gate(record, sent)) is not None:
                return ended
            topic = record.topic
            future = await send(topic_names[topic], record.value, key=record.key,
                                partition=partition_of(topic, record.key))
            future.add_done_callback(delivered)
            sent += 1
            per_topic[record.topic] += 1
            if record.malformed is not None:
                malformed[record.malformed] += 1
            elif record.grey_market:
                tally.grey += 1
            if record.topic != TOPIC_REGISTRY:
                if tally.first is None:
                    tally.first = record.occurred_at
                tally.last = record.occurred_at
            if sent % _YIELD_EVERY == 0:
                if tally.failed:
                    return "failed"
                await asyncio.sleep(0)  # let the sender, signal handlers and `stop` in
                self.report()
        if self.plan.limit is not None and sent >= self.plan.limit:
            return "limit"
        # a live period ends at midnight after its last day, not at its last event
        if self.plan.live and not await self.until(self.plan.period_end()):
            return "stopped"
        return "done"
