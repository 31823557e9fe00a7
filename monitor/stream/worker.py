"""The stream worker: input topics in, alert transitions and compliance snapshots out.

Two stages, each a Faust app with its own consumer group and event loop, run in two
processes of one worker (`monitor.stream.stages`), so that several workers share the work by
partition and each uses two cores:

1. **intake** (group `<app_id>-intake`) reads the four input topics (keyed by ticket, depot, outlet, exporter),
   dead-letters what cannot be used, and forwards the rest untouched, in envelopes, to the
   internal topic keyed by exporter. Registrations go to every partition.
2. **judging** (group `<app_id>`) reads that topic: each partition holds whole exporters, judged live by the
   obligation core (`monitor.stream.live`). Each exporter's compact state is checkpointed
   every few seconds to a changelog-backed table (`monitor.stream.checkpoint`), with each
   partition's floor: the offset from which its envelopes are not all covered by
   checkpoints. Every alert message published is kept in another table. A worker that takes
   over a partition (after a crash or a rebalance) loads its exporters, reads the internal
   topic again from the floor, judges again only the envelopes past each exporter's
   checkpoint, and corrects only what differs from what was published.

A timer moves the clock: deadlines and outlets going stale are judged when they fall due,
with no further event. Offsets are committed by Faust after the producer has flushed, so an
input message counts as consumed only once its envelope is durable on the internal topic.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import sys
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

import faust
import orjson
from aiokafka.errors import KafkaError
from faust.types import TP
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import ValidationError

from monitor import logs
from monitor.contracts.errors import explain
from monitor.contracts.events import ServiceTicketEvent
from monitor.contracts.outputs import ClockState
from monitor.contracts.registry import ExporterRegistration
from monitor.kafka import METADATA_MAX_AGE_MS, KafkaTarget, client_options, faust_broker_options, kafka_client_options
from monitor.kafka.reads import (
    direct_consumer,
    fetch_from,
    last_batches,
    partition_bounds,
    read_after,
    read_range,
    true_ends,
)
from monitor.obligations.clock import CAUGHT_UP, InputProgress
from monitor.obligations.policy import PolicyBook
from monitor.obligations.timebase import HOUR, SECOND, Micros, stamp, to_micros
from monitor.stream import checkpoint
from monitor.stream.consumer import InstanceAssignor, StreamConsumer, use_stream_consumer
from monitor.stream.envelope import Envelope, Origin, rejected
from monitor.stream.intake import EVENT_ADAPTERS, input_progress, peek, reason_kind, valid_event, why_refused
from monitor.stream.live import LiveNetwork, Published
from monitor.stream.metrics import (
    CHECKPOINT_BYTES,
    CHECKPOINTS,
    CLOCK_BEHIND,
    CLOCK_STATE,
    CONSUMED,
    CONSUMER_LAG,
    DATA_LAG,
    DEADLETTER,
    DEADLINE_LAG,
    DUPLICATES,
    EXPORTERS,
    LOOP_LAG,
    PROCESSING_LAG,
    RECOVERED,
    REFETCHED,
    REJECTED,
    REJUDGED,
    SNAPSHOTS,
    TRANSITIONS,
    UNCHECKPOINTED,
    ComplianceSeries,
    fetch_page,
    merge_pages,
)
from monitor.stream.producer import use_tracking_producer
from monitor.stream.settings import WorkerSettings
from monitor.stream.stages import (
    WATCH_SECONDS,
    Stage,
    StageProcess,
    StageWorker,
    StopTogether,
    carry_committed_offsets,
    intake_group,
    parent_pid,
    run_history_stage,
)
from monitor.stream.tables import DeclaredTableManager
from monitor.stream.topics import CHANGELOG_CONFIG, TopicNames

log = logging.getLogger(__name__)

ENVELOPE_BYTES = 512 * 1024  # an envelope is sent before it grows past this
EVENT_TOPICS = frozenset(topic for topic in EVENT_ADAPTERS if topic != "registry")  # appended to, not compacted
STRAGGLER_CHECK_SECONDS = 2.0  # a partition quiet this long is read past its last judged envelope
STRAGGLER_RECHECK_SECONDS = 30.0  # and read so again at this interval while it stays quiet
LOOP_PROBE_SECONDS = 0.05  # how often the event loop's lag is measured
CHECKPOINT_BUDGET_SECONDS = 0.05  # the most of one tick spent writing checkpoints
STRAGGLER_PENDING_SECONDS = 10.0  # envelopes fetched but not handed over for this long are read directly
SENDER_SILENCE = 10.0  # seconds after which a sender's catching-up watermark no longer holds the clock back
END_SETTLE_SECONDS = 2.0  # on a broker reporting ends short, a partition at its end delivered nothing this long
PROGRESS_SECONDS = 0.5  # how often an intake tells every judging partition how far its input has got, if that moved


def _assignor_options(settings: WorkerSettings) -> dict[str, Any]:
    """Faust's assignor, or with an instance id (static membership) one that takes the assignment
    of this instance's former run as its own (see monitor.stream.consumer)."""
    return {"PartitionAssignor": InstanceAssignor} if settings.instance_id else {}


def now_micros() -> Micros:
    return time.time_ns() // 1000


STATE_TABLE, PUBLISHED_TABLE = "exporters", "published"  # the judging stage's tables


def changelog_topics(app_id: str) -> tuple[str, ...]:
    """The changelog topics of the judging stage's tables (named as Faust names them)."""
    return tuple(f"{app_id}-{table}-changelog" for table in (STATE_TABLE, PUBLISHED_TABLE))


def _floor_key(partition: int) -> bytes:
    """The state table's key of a judging partition's floor (no exporter id is empty)."""
    return b"%d||floor" % partition


class PartitionKeyedTable(faust.Table):
    """A table whose keys start with their partition number (`b"3|..."`).

    Its changelog partition is the partition of the exporter the key belongs to, so the state
    moves with the exporter's partition, and it may be written from a timer as well as from
    the agent that reads that partition.
    """

    def partition_for_key(self, key: Any) -> int | None:
        return int(bytes(key).split(b"|", 1)[0])

    def _new_changelog_topic(self, *, retention: Any = None, compacting: bool | None = None,
                             deleting: bool | None = None) -> Any:
        # Faust sends changelogs with acks=0; these hold what a worker taking over needs, so
        # the broker must acknowledge them before the offsets that depend on them are committed
        return self.app.topic(
            self._changelog_topic_name(), key_type=bytes, value_type=bytes, key_serializer="raw",
            value_serializer="raw", partitions=self.partitions, retention=retention,
            compacting=self._changelog_compacting if compacting is None else compacting,
            deleting=self._changelog_deleting if deleting is None else deleting,
            acks=True, internal=True, config=self.extra_topic_configs, maxsize=131_072, allow_empty=True)


class StreamWorker:
    """One stage of a worker, in its own process: the Faust app, its topics, agents and timers;
    for the judging stage also its tables and clock.

    The intake stage's app is `<app_id>-intake` (its consumer group reads the input topics);
    the judging stage's is `<app_id>` (its group reads the internal topic, and its tables'
    changelogs are named after it). Each has its own consumer and event loop, so neither
    starves the other while a backlog drains (`monitor.stream.stages` runs them together).
    """

    def __init__(self, settings: WorkerSettings, registry: Mapping[str, ExporterRegistration],
                 policy: PolicyBook, *, short_end_offsets: bool = True, stage: Stage = "judging",
                 children: Sequence[StageProcess] = ()) -> None:
        self.settings = settings
        self.stage = stage
        self.children = list(children)  # the stages this judging stage started (intake, history), if it did
        self.parent = parent_pid() if stage == "intake" else None  # the worker that started this intake
        # each child's last /metrics page, read every WATCH_SECONDS (`_watch_partner`)
        self.child_pages: dict[str, bytes] = {child.name: b"" for child in self.children}
        # the broker may report end offsets short (the embedded one): then changelog tails and the
        # dead-letter depth are read past them (`monitor.embedded.deviations`)
        self.short_end_offsets = short_end_offsets
        for workaround in ("input_skipped", "consumer_skipped", "consumer_stopped_short",
                           "changelog_past_reported_end", "deadletter_past_reported_end"):
            RECOVERED.labels(workaround)  # shown at 0 from the start
        self.names = names = TopicNames.of(settings.topic_prefix)
        self.short = {getattr(names, attr): short for attr, short in (
            ("tickets", "service-tickets"), ("stock", "parts-stock"), ("outlets", "outlet-status"),
            ("registry", "registry"))}
        self.topic_of = {short: topic for topic, short in self.short.items()}
        self.as_of = to_micros(settings.as_of) if settings.as_of is not None else None
        self.window = round(settings.reorder_window_seconds * SECOND)
        # with a fixed "now", an exporter counts as quiet as soon as the worker has read everything
        idle_after = 0 if self.as_of is not None else round(settings.clock_idle_after_seconds * SECOND)
        self.network = LiveNetwork(registry, policy, horizon=round(settings.horizon_hours * HOUR),
                                   published=self._published_of,
                                   lag_bound=round(settings.clock_lag_bound_seconds * SECOND), idle_after=idle_after)
        self.partition_of: dict[str, int] = {}
        self.loaded: set[int] = set()
        # per judging partition: each intake's view of event time, and the partition's clock and watermark
        self.senders: dict[int, dict[str, tuple[Micros | None, bool, float]]] = defaultdict(dict)
        self.progress: dict[int, InputProgress] = {}  # judging partition -> how far its input has been read
        self.judging_behind: dict[int, int] = {}  # judging partition -> envelopes on it not yet delivered
        self.latest: dict[tuple[str, int], Micros] = {}  # intake: latest event time per input partition
        self.routed_at: dict[tuple[str, int], float] = {}  # intake: when each input partition last delivered
        self.lag: dict[tuple[str, int], int] = {}  # intake: messages behind per input partition
        self.read_to: dict[tuple[str, int], int] = {}  # intake: the last offset routed per event partition
        # intake, on a broker reporting ends short: (reported end, true end) of event partitions read to their
        # reported end, from a direct read of the last batch
        self.true_ends: dict[tuple[str, int], tuple[int, int]] = {}
        self.inputs_unread = False  # intake: an event partition has records waiting and none routed yet
        self._progress_sent: tuple[tuple[Micros | None, bool], float] | None = None  # intake: last stamp alone
        self._caught_up_at: float | None = None  # intake: when it last stopped catching up (None: while it is)
        self._batch_stamp: tuple[Micros | None, bool] | None = None  # intake: the stamp of the batch being routed
        self.last_snapshot: dict[str, bytes] = {}
        self._next_snapshot = 0.0
        self._published_loading: dict[str, Published] = {}
        self._unsent: list[dict[str, Any]] = []  # taken over, recorded as about to be sent but not as sent
        self._loading = asyncio.Lock()
        self.judged_to: dict[int, int] = {}  # judging partition -> the last offset judged or taken over
        # per exporter: the offset of its first envelope judged since its checkpoint, the events
        # judged since, the slot its next checkpoint goes to, and how many chunks each slot holds
        self._pending_from: dict[str, int] = {}
        self._floors: dict[int, int] = {}  # judging partition -> the floor last written to the table
        self._covered_to: dict[str, int] = {}  # exporter -> its checkpoint's offset, when past the committed one
        self._since: dict[str, int] = {}
        self._next_slot: dict[str, bytes] = {}
        self._chunks: dict[tuple[str, bytes], int] = {}
        self.fatal: str | None = None  # why the worker stopped itself
        self._round: list[str] = []  # exporters still to checkpoint in this round
        self._next_checkpoint = 0.0
        self.last_envelope_at: dict[int, float] = {}  # judging partition -> when its last envelope came
        self._judging_lock = asyncio.Lock()
        self._next_straggler_check = 0.0
        self.checked_at: dict[int, float] = {}  # judging partition -> when it was last read past its end
        self.series = ComplianceSeries(settings.metrics_max_series)  # live figures as gauges, bounded
        self._event_lag = {topic: PROCESSING_LAG.labels(topic) for topic in EVENT_TOPICS}
        self._lag_series: set[tuple[str, int]] = set()  # input partitions with a consumer lag series
        self._freshness_series: set[str] = set()  # exporters with data lag and clock state series
        self._deadletter_ends: dict[int, tuple[int, int]] = {}  # partition -> (reported end, true end)
        self.app = self._build_app()

    # ---- the app --------------------------------------------------------------------------------

    def _build_app(self) -> faust.App:
        s, names = self.settings, self.names
        intake = self.stage == "intake"
        app = faust.App(
            intake_group(s.app_id) if intake else s.app_id,
            **faust_broker_options(s),  # bootstrap servers and MONITOR_KAFKA_* security
            store="memory://",
            datadir=str(s.data_dir / ("faust-intake" if intake else "faust")),
            topic_partitions=s.partitions,
            topic_replication_factor=s.topic_replication,  # its internal and changelog topics
            web_host=s.web_host,
            web_port=s.web_port,
            web_bind=s.web_host,
            web_tables_enabled=False,  # the tables hold exporters' data: never served raw
            web_router_enabled=False,
            broker_session_timeout=s.session_timeout_seconds,
            broker_heartbeat_interval=s.heartbeat_seconds,
            broker_rebalance_timeout=s.rebalance_timeout_seconds,
            consumer_group_instance_id=s.instance_id,  # static membership when set (a restart takes over at once)
            **_assignor_options(s),
            broker_commit_interval=1.0,
            consumer_auto_offset_reset="earliest",
            consumer_metadata_max_age_ms=METADATA_MAX_AGE_MS,  # see monitor.kafka: a moved leader found in 10 s
            producer_acks=-1,
            producer_max_request_size=16 * 1024 * 1024,
            producer_linger=0.005,
            TableManager=DeclaredTableManager,  # no second's pause at start (see monitor.stream.tables)
            key_serializer="raw",
            value_serializer="raw",
        )
        use_tracking_producer(app)  # see monitor.stream.producer: a flush that never ends otherwise
        self.sender_id = f"{s.app_id}:{id(self):x}:{time.time_ns():x}"
        self.inputs = app.topic(names.tickets, names.stock, names.outlets, names.registry,
                                key_serializer="raw", value_serializer="raw")
        self.internal_topic = names.internal(s.app_id)
        self.by_exporter = app.topic(self.internal_topic, partitions=s.partitions, internal=True,
                                     key_serializer="raw", value_serializer="raw")
        self.alerts = app.topic(names.alerts, key_serializer="raw", value_serializer="raw")
        self.compliance = app.topic(names.compliance, key_serializer="raw", value_serializer="raw")
        self.deadletter = app.topic(names.deadletter, key_serializer="raw", value_serializer="raw")
        app.task(self._watch_loop)
        if self.children or self.parent is not None:
            app.task(self._watch_partner)
        if intake:
            use_stream_consumer(app, frozenset({names.tickets, names.stock, names.outlets, names.registry}))
            app.agent(self.inputs, name="intake")(self._intake)
            app.timer(s.deadletter_check_seconds, name="deadletter-depth")(self._count_dead_letters)
            app.timer(PROGRESS_SECONDS, name="progress")(self._send_progress)
            app.on_partitions_revoked.connect(self._forget_inputs)
        else:
            use_stream_consumer(app, frozenset({self.internal_topic}))
            # each exporter's checkpoint (`P|exporter|c<slot><chunk>`) and its partition's floor
            # (`P||floor`), and every alert message published (`P|exporter|alert_id`)
            self.state_table: Any = app.tables.add(PartitionKeyedTable(
                app, name=STATE_TABLE, default=None, partitions=s.partitions, beacon=app.tables.beacon,
                key_type=bytes, value_type=bytes, extra_topic_configs=CHANGELOG_CONFIG))
            self.published_table: Any = app.tables.add(PartitionKeyedTable(
                app, name=PUBLISHED_TABLE, default=None, partitions=s.partitions, beacon=app.tables.beacon,
                key_type=bytes, value_type=bytes, extra_topic_configs=CHANGELOG_CONFIG))
            self._changelogs = {id(table): table.changelog_topic.get_topic_name()
                                for table in (self.state_table, self.published_table)}
            app.agent(self.by_exporter, name="judging")(self._judging)
            app.timer(s.tick_seconds, name="clock")(self._tick)
        # Faust makes a view class of each handler, so they are plain functions that bind to the view

        async def metrics(view: Any, request: Any) -> Any:
            return await self._metrics_page(view, request)

        async def healthz(view: Any, request: Any) -> Any:
            return await self._health_page(view, request)

        app.page("/metrics", name="metrics")(metrics)
        app.page("/healthz", name="healthz")(healthz)
        return app

    async def _metrics_page(self, web: Any, request: Any) -> Any:
        self._show_consumer_lag()
        self._show_freshness()
        UNCHECKPOINTED.set(sum(self._since.values()))
        page = generate_latest(REGISTRY)
        for child in self.children:  # one page for the worker: its children's series with this stage's
            page = merge_pages(page, self.child_pages[child.name])
        return web.bytes(page, content_type=CONTENT_TYPE_LATEST.split(";")[0])

    def _show_freshness(self) -> None:
        """Set each judged exporter's data lag and clock state (an exporter that moved away loses its series)."""
        wall = self.as_of if self.as_of is not None else now_micros()
        held = self.network.exporters
        for gone in self._freshness_series - held.keys():
            DATA_LAG.remove(gone)
            for state in ClockState:
                CLOCK_STATE.remove(gone, state.value)
        self._freshness_series = set(held)
        for exporter, live in held.items():
            clock = live.clock
            if clock.latest is not None:
                DATA_LAG.labels(exporter).set(max(0, wall - clock.latest) / SECOND)
            for state in ClockState:
                CLOCK_STATE.labels(exporter, state.value).set(1.0 if clock.state is state else 0.0)

    async def _watch_loop(self) -> None:
        """Measure how late the event loop runs what is due (monitor_event_loop_lag_seconds)."""
        interval = LOOP_PROBE_SECONDS
        while True:
            started = time.monotonic()
            await asyncio.sleep(interval)
            LOOP_LAG.observe(max(0.0, time.monotonic() - started - interval))

    async def _watch_partner(self) -> None:
        """Stop this process with the other stages of its worker: an intake whose worker has gone
        (killed, even with -9) stops; a worker one of whose child stages stopped stops too, with
        exit code 2 when that stage failed (its supervisor then restarts the whole worker). The
        worker also reads its children's /metrics pages here, so that its own page never waits
        for theirs (which may be up to WATCH_SECONDS old, or the last one read while a child is
        too busy to answer)."""
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            for child in self.children:
                if child.exited() is None:
                    self.child_pages[child.name] = await fetch_page(child.metrics_url) or self.child_pages[child.name]
            if self.parent is not None and os.getppid() != self.parent:
                log.warning("the worker that started this intake stage (pid %d) is gone; stopping", self.parent)
                os.kill(os.getpid(), signal.SIGTERM)
                return
            for child in self.children:
                code = child.exited()
                if code is None or child.stopping:
                    continue
                if code != 0:
                    self.fatal = f"the {child.name} stage stopped with exit code {code}"
                    log.critical("%s; stopping the worker", self.fatal)
                else:
                    log.info("the %s stage stopped; stopping the worker", child.name)
                os.kill(os.getpid(), signal.SIGTERM)
                return

    def _show_consumer_lag(self) -> None:
        """Set monitor_consumer_lag_messages from the lag the intake last saw, for the input
        partitions this worker holds now (a partition that moved away loses its series)."""
        held = {(self.short[tp.topic], tp.partition) for tp in self.app.assignor.assigned_actives()
                if tp.topic in self.short}  # empty before the first assignment
        for gone in self._lag_series - held:
            CONSUMER_LAG.remove(*gone)
        self._lag_series = {tp for tp in held if tp in self.lag}
        for topic, partition in self._lag_series:
            # a broker that reports the end of a partition short (Tansu 0.6) can make it negative
            CONSUMER_LAG.labels(topic, partition).set(max(0, self.lag[(topic, partition)]))

    async def _count_dead_letters(self) -> None:
        try:
            held = await topic_depth(kafka_client_options(self.settings), self.names.deadletter,
                                     self._deadletter_ends if self.short_end_offsets else None)
        except (TimeoutError, KafkaError, OSError) as exc:
            log.warning("counting the messages of %s failed (%s); trying again in %.0f s", self.names.deadletter,
                        exc, self.settings.deadletter_check_seconds)
            return
        DEADLETTER.set(held)

    async def _health_page(self, web: Any, request: Any) -> Any:
        tables: Any = self.app.tables
        return web.json({"status": "ok", "stage": self.stage, "recovered": tables.recovery.completed.is_set(),
                         "exporters": len(self.network.exporters),
                         "partitions": sorted(self.loaded),
                         "clock": stamp(max(live.clock.now for live in self.network.exporters.values()))
                         if self.network.exporters else None})

    # ---- stage 1: intake ------------------------------------------------------------------------

    async def _intake(self, stream: Any) -> None:
        async for events in stream.take_events(self.settings.intake_batch, within=self.settings.intake_linger_seconds):
            await self._route(events)

    async def _route(self, events: list[Any]) -> None:
        """Route a batch of input records into their exporters' envelopes.

        Every envelope of the batch carries the stamp of how far the input had got before the
        batch: the records of the batch count only once all its envelopes are sent. A stamp
        counting them, on the first envelope sent, would let the judging move an exporter's
        clock past events of the same batch still to come in a later envelope (a batch can
        span days of event time on a sparse topic)."""
        self.inputs_unread = self._any_not_yet_read()  # as the batch starts: one it reads first still counts
        self._batch_stamp = self._progress()
        try:
            await self._route_batch(events)
        finally:
            self._batch_stamp = None

    async def _route_batch(self, events: list[Any]) -> None:
        envelopes: dict[str, Envelope] = {}
        registrations = Envelope(self.sender_id)
        consumer = self.app.consumer
        for event in events:
            message = event.message
            topic = self.short.get(message.topic, message.topic)
            value = message.value if isinstance(message.value, bytes) else bytes(message.value or b"")
            tp_key = (topic, message.partition)
            try:
                self.lag[tp_key] = consumer.highwater(message.tp) - message.offset - 1
            except Exception:  # highwater is best effort: not known before the first fetch
                self.lag[tp_key] = 0
            if topic in EVENT_TOPICS:
                for at, key, skipped in await self._skipped_before(message.topic, topic, message.partition,
                                                                   message.offset):
                    await self._take(Origin(topic, message.partition, at, key), skipped, envelopes, registrations)
            await self._take(Origin(topic, message.partition, message.offset, message.key), value, envelopes,
                             registrations)
        for exporter, envelope in envelopes.items():
            await self._forward(exporter, envelope)
        if registrations.values:
            registrations.watermark, registrations.catching_up = self._progress()  # the batch all sent
            data = registrations.encode()
            for partition in range(self.settings.partitions):
                await self.by_exporter.send(key=b"", value=data, partition=partition)

    async def _take(self, origin: Origin, value: bytes, envelopes: dict[str, Envelope],
                    registrations: Envelope) -> None:
        """Put one input record in its exporter's envelope (sent once full), a registration in
        `registrations`, or a record refused in the dead-letter topic."""
        topic = origin.topic
        CONSUMED.labels(topic).inc()
        if topic == "registry":
            refusal = why_refused(topic, value)
            if refusal is not None:
                await self._dead_letter(origin, value, *refusal)
            else:
                registrations.add(origin, value)
            return
        exporter, at = peek(value)
        if exporter is None:
            refusal = why_refused(topic, value) if topic in EVENT_ADAPTERS else (f"unknown input topic {topic}", [])
            await self._dead_letter(origin, value, *(refusal or ("exporter_id is required", [])))
            return
        tp_key = (topic, origin.partition)
        if at is not None and at > self.latest.get(tp_key, 0):
            self.latest[tp_key] = at
        self.routed_at[tp_key] = time.monotonic()
        envelope = envelopes.get(exporter)
        if envelope is None:
            envelope = envelopes[exporter] = Envelope(self.sender_id)
        envelope.add(origin, value)
        if envelope.size() >= ENVELOPE_BYTES:
            await self._forward(exporter, envelopes.pop(exporter))

    async def _skipped_before(self, topic_name: str, topic: str, partition: int, offset: int
                              ) -> list[tuple[int, bytes | None, bytes]]:
        """The records of an event partition that the consumer left out before `offset`, read
        from the topic directly (none, normally).

        The event topics are appended to and not compacted, so a delivered offset past the one
        expected means the consumer skipped records (Faust, around a rebalance: see
        `monitor.stream.consumer`). The offset expected is the one after the last routed, or
        the committed offset the partition was last sought to, whichever is later (records
        before it were routed by this worker or by the partition's previous owner). A
        producer's transaction markers take offsets of their own: a read of such a hole
        returns nothing, and nothing is counted.
        """
        tp_key = (topic, partition)
        routed = self.read_to.get(tp_key)
        self.read_to[tp_key] = offset if routed is None else max(routed, offset)
        sought = cast(StreamConsumer, self.app.consumer).sought.get(TP(topic_name, partition))
        expected = max((at for at in (None if routed is None else routed + 1, sought) if at is not None),
                       default=None)  # None: nothing routed, never committed (read from where it starts)
        if expected is None or offset <= expected:
            return []
        skipped = await self._read_directly(topic_name, partition, expected, offset)
        if skipped:
            RECOVERED.labels("input_skipped").inc(len(skipped))
            log.warning("%s[%d]: records %d to %d were not delivered by the consumer; %d read from the topic "
                        "directly", topic, partition, expected, offset - 1, len(skipped))
        return skipped

    async def _read_directly(self, topic_name: str, partition: int, start: int, end: int
                             ) -> list[tuple[int, bytes | None, bytes]]:
        """A partition's records from `start` to `end` (excluded), read from the topic; while the
        broker is away, tried again every second (nothing after them can be taken without them)."""
        while True:
            try:
                return await read_range(kafka_client_options(self.settings), topic_name, partition, start, end)
            except (TimeoutError, KafkaError) as exc:
                log.warning("%s[%d]: reading records %d to %d failed (%s); trying again", topic_name, partition,
                            start, end - 1, exc)
                await asyncio.sleep(1.0)

    def _progress(self) -> tuple[Micros | None, bool]:
        """The stamp that tells the judging stage how far event time has surely got, and whether
        this intake is catching up on a backlog (an exporter's silence then proves nothing)."""
        now = time.monotonic()
        watermark, catching_up = input_progress(
            self.lag, self.latest, self.routed_at, unread=self.inputs_unread, catch_up_lag=self.settings.catch_up_lag,
            settle=END_SETTLE_SECONDS if self.short_end_offsets else None, now=now, caught_up_at=self._caught_up_at,
            true_end=self._at_true_end() if self.short_end_offsets else None)
        if catching_up:
            self._caught_up_at = None
        elif self._caught_up_at is None:
            self._caught_up_at = now
        return watermark, catching_up

    def _reported_end(self, tp_key: tuple[str, int]) -> int | None:
        """An input partition's end offset as its consumer's last fetch reported it (None when not known)."""
        try:
            return int(self.app.consumer.highwater(TP(self.topic_of[tp_key[0]], tp_key[1])))
        except Exception:  # not fetched yet, or no longer assigned
            return None

    def _at_true_end(self) -> dict[tuple[str, int], bool]:
        """Of the event partitions read to their reported end whose true end was read since that end
        last moved: whether the routing has reached the true end."""
        found: dict[tuple[str, int], bool] = {}
        for tp_key, (reported, true_end) in self.true_ends.items():
            if self._reported_end(tp_key) == reported and self.lag.get(tp_key, 1) <= 0:  # else the time rule
                found[tp_key] = self.read_to.get(tp_key, -1) + 1 >= true_end
        return found

    async def _read_true_ends(self) -> None:
        """On a broker reporting ends short, while a backlog is read and just after: read the last
        batch of each event partition routed to its reported end since that end moved, to learn
        whether records past it are still to come (`_at_true_end`)."""
        if not self.short_end_offsets:
            return
        if self._caught_up_at is not None and time.monotonic() - self._caught_up_at >= END_SETTLE_SECONDS:
            self.true_ends.clear()  # live: no end holds the clock any more (`input_progress`)
            return
        due: dict[tuple[str, int], int] = {}  # (topic, partition) -> the end its consumer reported
        for tp_key, waiting in self.lag.items():
            end = self._reported_end(tp_key)
            if (waiting <= 0 and tp_key[0] in EVENT_TOPICS and end is not None
                    and self.true_ends.get(tp_key, (None, 0))[0] != end):
                due[(self.topic_of[tp_key[0]], tp_key[1])] = end
        if not due:
            return
        try:
            ends = await true_ends(kafka_client_options(self.settings), list(due))
        except (TimeoutError, KafkaError, OSError) as exc:  # the time rule holds meanwhile
            log.debug("reading the true ends of %d input partitions failed (%r)", len(due), exc)
            return
        for (topic_name, partition), true_end in ends.items():  # read after the consumer's end: at least as far
            self.true_ends[(self.short[topic_name], partition)] = (due[(topic_name, partition)], true_end)

    async def _send_progress(self) -> None:
        """Tell every judging partition how far this intake's input has got when that moved with
        no message to carry it (a partition read to its end, on the embedded broker once it
        settles), and, while that still holds the judging back, at least every half
        SENDER_SILENCE (so that the judging knows this intake is there): an empty envelope."""
        if not self.lag or self._batch_stamp is not None:
            return  # nothing routed yet, or a batch still being sent (a stamp now would count its records)
        await self._read_true_ends()
        if self._batch_stamp is not None:
            return  # a batch began while the ends were read
        self.inputs_unread = self._any_not_yet_read()
        stamp_now, now = self._progress(), time.monotonic()
        if self._progress_sent is not None:
            sent, at = self._progress_sent
            holding = stamp_now[0] is not None or stamp_now[1]
            if sent == stamp_now and not (holding and now - at >= SENDER_SILENCE / 2):
                return
        self._progress_sent = (stamp_now, now)
        envelope = Envelope(self.sender_id)
        envelope.watermark, envelope.catching_up = stamp_now
        data = envelope.encode()
        for partition in range(self.settings.partitions):
            await self.by_exporter.send(key=b"", value=data, partition=partition)

    def _forget_inputs(self, sender: Any, /, *args: Any, signal: Any, **_: Any) -> None:
        """Forget what was seen of input partitions this intake no longer reads: the lag last
        seen on one that moved away would hold the watermark at its last event time for good
        (its exporters' clocks stuck on event time, their deadlines never passing on the wall
        clock), and its new owner stamps how far it has got itself."""
        revoked: set[TP] = args[0]
        for tp in revoked:
            tp_key = (self.short.get(tp.topic, tp.topic), tp.partition)
            for seen in (self.lag, self.latest, self.routed_at, self.read_to, self.true_ends):
                seen.pop(tp_key, None)

    def _any_not_yet_read(self) -> bool:
        """Whether an event partition assigned to this intake holds records past where it started
        and has had nothing routed from it yet (its end unknown counts as holding some).

        In a backlog the consumer's first fetches bring each partition's first megabyte, which
        spans days of event time on a sparse topic and hours on a busy one: until a partition
        has delivered, the event time it holds is unknown. One offset past the start is not
        counted: it may be a transaction's marker, which is never delivered."""
        consumer = cast(StreamConsumer, self.app.consumer)
        for tp in consumer.assignment():
            topic = self.short.get(tp.topic)
            if topic not in EVENT_TOPICS or (topic, tp.partition) in self.read_to:
                continue
            try:
                end = consumer.highwater(tp)
            except Exception:  # not fetched yet
                end = None
            if end is None or end > (consumer.sought.get(tp) or 0) + 1:
                return True
        return False

    async def _forward(self, exporter: str, envelope: Envelope) -> None:
        """Send an envelope of the batch being routed, with the batch's stamp."""
        if self._batch_stamp is None:
            raise RuntimeError("envelopes are forwarded only while a batch is routed")
        envelope.watermark, envelope.catching_up = self._batch_stamp
        await self.by_exporter.send(key=exporter.encode(), value=envelope.encode())

    async def _dead_letter(self, origin: Origin, value: bytes, reason: str, errors: list[dict[str, Any]]) -> None:
        kind = reason_kind(errors)
        REJECTED.labels(origin.topic, kind).inc()
        log.info("dead-lettered %s[%d]@%d: %s", origin.topic, origin.partition, origin.offset, reason,
                 extra={"topic": origin.topic, "partition": origin.partition, "offset": origin.offset,
                        "reason": kind, **_readable_ids(value)})
        document = rejected(origin, value, reason, errors, prefix=self.settings.topic_prefix)
        sent = await self.deadletter.send(key=origin.key, value=orjson.dumps(document))

        def check(future: Any) -> None:  # the input stays on its topic: say where, so it can be recovered
            exc = future.exception()
            if exc is not None:
                log.error("the dead letter of %s[%d]@%d could not be written to %s: %r", origin.topic,
                          origin.partition, origin.offset, self.names.deadletter, exc)

        asyncio.ensure_future(sent).add_done_callback(check)

    # ---- stage 2: judging -----------------------------------------------------------------------

    async def _judging(self, stream: Any) -> None:
        consumer = self.app.consumer
        async for event in stream.events():
            message = event.message
            try:
                self.judging_behind[message.partition] = consumer.highwater(message.tp) - message.offset - 1
            except Exception:  # highwater is best effort: not known before the first fetch
                self.judging_behind[message.partition] = 0
            await self._judge_in_order(message.partition, message.offset, message.key, message.value)

    async def _judge_in_order(self, partition: int, offset: int, key: bytes | None, data: bytes) -> None:
        async with self._judging_lock:
            self.last_envelope_at[partition] = time.monotonic()
            await self._judge_after_gap(partition, offset, key, data)

    async def _judge_after_gap(self, partition: int, offset: int, key: bytes | None, data: bytes) -> None:
        """Judge the envelope at `offset`, and first any before it that this worker has not judged.

        The internal topic is neither compacted nor transactional, so its offsets have no holes:
        an envelope that comes after a jump means the consumer left some out (Faust drops the
        messages it was handing over when a rebalance suspends the flow, and counts a jump in
        offsets as a gap it may commit past). Those are read straight from the topic, so every
        envelope is judged, once, in offset order.
        """
        if partition not in self.loaded:
            await self._ensure_loaded(partition)
        last = self.judged_to.get(partition, -1)
        if offset <= last:
            return  # judged already (kept in the table by this worker or the previous owner)
        if offset > last + 1:
            missing = await self._read_directly(self.internal_topic, partition, last + 1, offset)
            REFETCHED.inc(len(missing))
            RECOVERED.labels("consumer_skipped").inc(len(missing))
            log.warning("partition %d: envelopes %d to %d were not delivered by the consumer; %d read from the "
                        "topic directly", partition, last + 1, offset - 1, len(missing))
            for at, missing_key, missing_data in missing:
                await self._judge_envelope(partition, at, missing_key, missing_data)
        await self._judge_envelope(partition, offset, key, data)

    async def _judge_stragglers(self) -> None:
        """Judge envelopes at the end of a quiet partition that the consumer left out.

        A gap shows when the next envelope comes; at the end of a partition nothing comes, so
        every few seconds a partition with nothing new is read past its last judged offset.
        """
        now = time.monotonic()
        if now < self._next_straggler_check:
            return
        self._next_straggler_check = now + STRAGGLER_CHECK_SECONDS
        # a partition is read once when it goes quiet, and again only every STRAGGLER_RECHECK_SECONDS
        quiet = {p: self.judged_to.get(p, -1) + 1 for p in self.loaded
                 if now - (came := self.last_envelope_at.get(p, 0.0)) >= STRAGGLER_CHECK_SECONDS
                 and ((checked := self.checked_at.get(p)) is None or checked < came
                      or now - checked >= STRAGGLER_RECHECK_SECONDS)}
        consumer = self.app.consumer
        fetching = getattr(consumer, "_active_partitions", None)  # Faust's: the partitions it fetches now
        for partition, start in list(quiet.items()):
            # the consumer holds the partition back (Faust stops fetching one whose buffer is full, until
            # the judging stage has taken what it holds) or knows there is more (the end offset of its
            # last fetch): the envelopes come in their turn. Its position is not asked: that call waits,
            # in the consumer's own thread, for a position to be known, and holds up every call there.
            tp = TP(self.internal_topic, partition)
            try:
                held_back = fetching is not None and tp not in fetching
                known_end = consumer.highwater(tp)  # None before its first fetch (just taken over)
                pending = held_back or known_end is None or known_end > start
            except Exception:  # not assigned to its consumer (a rebalance under way): read it
                pending = False
            if pending and now - self.last_envelope_at.get(partition, 0.0) < STRAGGLER_PENDING_SECONDS:
                del quiet[partition]
        if not quiet:
            return
        try:
            found = await read_after(kafka_client_options(self.settings), self.internal_topic, quiet)
        except (TimeoutError, KafkaError) as exc:
            log.warning("reading the ends of partitions %s failed (%s); trying again later", sorted(quiet), exc)
            return
        # the consumer has had STRAGGLER_CHECK_SECONDS to deliver an envelope before it counts as left out
        written_before = int(time.time() * 1000 - STRAGGLER_CHECK_SECONDS * 1000)
        for partition, found_there in found.items():
            records = list(itertools.takewhile(lambda r: r[3] <= written_before, found_there))
            if len(records) == len(found_there):
                self.checked_at[partition] = now  # else looked at again at the next check, in two seconds
            if not records:
                continue
            async with self._judging_lock:
                if partition not in self.loaded:
                    continue
                REFETCHED.inc(len(records))
                RECOVERED.labels("consumer_stopped_short").inc(len(records))
                log.warning("partition %d: envelopes %d to %d were not delivered by the consumer; read from the "
                            "topic directly", partition, records[0][0], records[-1][0])
                for at, key, data, _ in records:
                    if at > self.judged_to.get(partition, -1):
                        await self._judge_envelope(partition, at, key, data)

    async def _judge_envelope(self, partition: int, offset: int, key: bytes | None, data: bytes) -> None:
        self.judged_to[partition] = max(offset, self.judged_to.get(partition, -1))
        envelope = Envelope.decode(data)
        self.senders[partition][envelope.sender] = (envelope.watermark, envelope.catching_up, time.monotonic())
        if not key:  # registrations (or none: how far an intake has got), sent to every partition
            for _, value in envelope:
                self.network.register(ExporterRegistration.model_validate_json(value))
            return
        exporter = key.decode()
        self.partition_of[exporter] = partition
        covered = self._covered_to.get(exporter)
        if covered is not None:  # taken over from a checkpoint past the committed offset
            if offset <= covered:
                return
            del self._covered_to[exporter]
        judged_at = now_micros()
        received_at = self.as_of if self.as_of is not None else judged_at
        debug = log.isEnabledFor(logging.DEBUG)
        taken = 0
        for origin, value in envelope:
            try:
                event = EVENT_ADAPTERS[origin.topic].validate_json(value)
            except ValidationError as exc:
                await self._dead_letter(origin, value, *explain(exc))
                continue
            at = to_micros(event.occurred_at)
            if not self.network.add(at, event, received_at):
                DUPLICATES.inc()
                continue
            taken += 1
            self._event_lag[origin.topic].observe(max(0, judged_at - at) / SECOND)
            if debug and isinstance(event, ServiceTicketEvent):
                log.debug("ticket %s: event %s (%s) taken for judging", event.ticket_id, event.event_id,
                          event.type.value, extra={
                              "ticket_id": event.ticket_id, "event_id": event.event_id,
                              "exporter_id": event.exporter_id, "market": event.market, "type": event.type.value})
        if taken:  # one of only duplicates (input read again after a takeover) would change nothing
            self._pending_from.setdefault(exporter, offset)
            self._since[exporter] = self._since.get(exporter, 0) + taken

    async def _ensure_loaded(self, partition: int) -> None:
        """Judge again the exporters of a partition this worker has just taken: from the tables,
        and the envelopes from the partition's floor to its committed offset, read from the
        internal topic (the consumer delivers those after, from the committed offset)."""
        async with self._loading:
            if partition in self.loaded:
                return
            await self._complete_tables(partition)
            floor = self.state_table.data.get(_floor_key(partition))
            committed = cast(StreamConsumer, self.app.consumer).sought.get(TP(self.internal_topic, partition)) or 0
            since = await self._read_since(partition, int(floor) if floor is not None else 0, committed)
            legacy = self._load(partition, since, committed)
            for key in legacy:  # envelopes an earlier version kept in the table: read from the topic instead
                await self._keep(self.state_table, key, None)
            self._floors[partition] = int(floor) if floor is not None else -1
            self.loaded.add(partition)
            self.last_envelope_at[partition] = time.monotonic()  # its consumer starts fetching from now

    async def _complete_tables(self, partition: int) -> None:
        """Apply the changelog records that Faust's recovery may have stopped short of.

        Faust restores a table up to the end offset the broker reports. The embedded broker
        (Tansu 0.6) reports the start of the partition's last record batch plus one, so the
        rest of that batch (the last envelopes or alert records the previous owner wrote)
        would be missing. A fetch from that offset returns the whole batch: its records are
        applied again, in order, which leaves the table as the full changelog says.
        """
        if not self.short_end_offsets:
            return  # the broker reports true end offsets (Apache Kafka): Faust's recovery read everything
        tables = {table.changelog_topic.get_topic_name(): table for table in (self.state_table, self.published_table)}
        while True:
            try:
                tails = await last_batches(kafka_client_options(self.settings),
                                           [(topic, partition) for topic in tables])
                break
            except (TimeoutError, KafkaError) as exc:  # the broker is away: nothing can be judged without it
                log.warning("partition %d: reading the end of its changelogs failed (%s); trying again", partition,
                            exc)
                await asyncio.sleep(1.0)
        applied = 0
        for (topic, _), (records, past_end) in tails.items():
            RECOVERED.labels("changelog_past_reported_end").inc(past_end)
            data = tables[topic].data
            for key, value in records:
                if value is None:
                    data.pop(key, None)
                else:
                    data[key] = value
                applied += 1
        log.debug("partition %d: %d changelog records at the end applied again", partition, applied)

    async def _read_since(self, partition: int, floor: int, committed: int) -> list[tuple[int, bytes | None, bytes]]:
        """The envelopes of a judging partition from `floor` to before `committed`, read from the
        topic (from where it starts, should retention have deleted the floor's envelope)."""
        if committed <= floor:
            return []
        while True:
            try:
                start, _ = await partition_bounds(kafka_client_options(self.settings), self.internal_topic, partition)
                break
            except (TimeoutError, KafkaError) as exc:
                log.warning("partition %d: reading its bounds failed (%s); trying again", partition, exc)
                await asyncio.sleep(1.0)
        if start > floor:
            log.warning("partition %d: envelopes %d to %d, not all covered by checkpoints, were deleted by the "
                        "internal topic's retention", partition, floor, start - 1)
        start = max(start, floor)
        return await self._read_directly(self.internal_topic, partition, start, committed) if committed > start else []

    def _load(self, partition: int, since: list[tuple[int, bytes | None, bytes]], committed: int) -> list[bytes]:
        """Take over a partition's exporters: each from its last checkpoint, with what was
        published about it, then the envelopes `since` the partition's floor that its checkpoint
        does not cover, up to the `committed` offset (judged by the previous owner: judged again
        without a word). Returns the keys of envelopes an earlier version kept in the table,
        still to delete."""
        prefix = b"%d|" % partition
        published: dict[str, Published] = defaultdict(dict)
        for key, value in list(self.published_table.items()):
            if bytes(key).startswith(prefix) and value is not None:
                message = orjson.loads(value[1:])
                published[message["exporter_id"]][message["alert_id"]] = message
                if value[:1] != b"1":  # the previous owner may have stopped before sending it
                    self._unsent.append(message)
        self._published_loading = dict(published)
        chunks: dict[str, list[tuple[bytes, bytes]]] = defaultdict(list)
        legacy: list[bytes] = []
        for table_key, value in list(self.state_table.items()):
            key = bytes(table_key)
            if not key.startswith(prefix) or value is None:
                continue
            _, exporter_key, suffix = key.split(b"|", 2)
            exporter = exporter_key.decode()
            if not exporter:  # the partition's floor
                continue
            if checkpoint.is_chunk(suffix):
                chunks[exporter].append((suffix, value))
                self._chunks[(exporter, suffix[1:2])] = max(self._chunks.get((exporter, suffix[1:2]), 0),
                                                            int(suffix[2:]) + 1)
            else:
                legacy.append(key)
        wall = self.as_of if self.as_of is not None else now_micros()
        restored, count = 0, 0
        checkpointed_to: dict[str, int] = {}
        for exporter, records in chunks.items():
            self.partition_of[exporter] = partition
            kept = checkpoint.latest(records)
            if kept is not None:
                try:
                    live = checkpoint.thaw(kept.blob, self.network.registry, self.network.policy,
                                           published.get(exporter, {}))
                except checkpoint.FormatRefused as exc:  # judging on without it would lose the exporter's history
                    self.fatal = (f"exporter {exporter}: {exc}; run a version that reads it, or start with a new "
                                  "MONITOR_APP_ID to judge the input topics again from their start")
                    log.critical("%s; stopping", self.fatal)
                    os.kill(os.getpid(), signal.SIGTERM)
                    raise
                self.network.adopt(live)
                checkpointed_to[exporter], restored = kept.offset, restored + 1
                self._next_slot[exporter] = checkpoint.SLOTS[1 - checkpoint.SLOTS.index(kept.slot)]
                if kept.offset >= committed:  # the consumer delivers again envelopes it covers
                    self._covered_to[exporter] = kept.offset
        for offset, key, data in since:
            if not key:  # registrations (or none: how far an intake has got), sent to every partition
                for _, value in Envelope.decode(data):
                    self.network.register(ExporterRegistration.model_validate_json(value))
                continue
            exporter = key.decode()
            self.partition_of[exporter] = partition
            if offset <= checkpointed_to.get(exporter, -1):
                continue
            taken = 0
            for origin, value in Envelope.decode(data):
                event = valid_event(origin.topic, value)  # a refused one was dead-lettered when first judged
                if event is not None and self.network.add(to_micros(event.occurred_at), event, wall):
                    taken += 1
            if taken:
                self._pending_from.setdefault(exporter, offset)
                self._since[exporter] = self._since.get(exporter, 0) + taken
                count += taken
        self.judged_to[partition] = committed - 1  # the consumer delivers from the committed offset
        REJUDGED.inc(count)
        for exporter, messages in published.items():
            self.partition_of.setdefault(exporter, partition)
            clock = self.network.exporter(exporter).clock
            # the previous owner's clock had passed every alert it raised: judging from an earlier
            # clock (catching up here) would withdraw alerts only to raise them again
            floor = max((to_micros(datetime.fromisoformat(m["opened_at"])) for m in messages.values()
                         if m["status"] != "retracted"), default=0)
            clock.now = max(clock.now, floor)
        for exporter, partition_here in self.partition_of.items():
            if partition_here == partition:  # silence is counted from the takeover, not from the start
                self.network.exporter(exporter).clock.received_at = wall
        self._published_loading = {}
        if count or restored or published:
            log.info("partition %d: %d exporters taken over (%d from checkpoints), %d events since their "
                     "checkpoints judged again (of %d envelopes read from the partition's floor), %d alerts "
                     "published before", partition,
                     sum(1 for p in self.partition_of.values() if p == partition), restored, count, len(since),
                     sum(len(p) for p in published.values()))
        return legacy

    async def _write_checkpoints(self) -> None:
        """Every `checkpoint_seconds`, checkpoint the exporters that changed: a few per tick, since
        each costs the event loop a few milliseconds per thousand events it holds."""
        now = time.monotonic()
        if not self._round:
            changed = [exporter for exporter, events in self._since.items() if events]
            if now < self._next_checkpoint or not changed:
                return
            self._round, self._next_checkpoint = sorted(changed), now + self.settings.checkpoint_seconds
        budget = now + CHECKPOINT_BUDGET_SECONDS
        while self._round and time.monotonic() < budget:
            async with self._judging_lock:
                await self._write_checkpoint(self._round.pop())
        if not self._round:
            async with self._judging_lock:
                await self._write_floors()

    async def _write_floors(self) -> None:
        """Write each held partition's floor where it moved: the offset of the first envelope
        judged since its exporter's checkpoint, over the partition's exporters (past the last
        envelope judged when every one is covered). In the changelog partition of the
        checkpoints it relies on, after them."""
        floors = {partition: self.judged_to.get(partition, -1) + 1 for partition in self.loaded}
        for exporter, offset in self._pending_from.items():
            partition = self.partition_of.get(exporter)
            if partition in floors:
                floors[partition] = min(floors[partition], offset)
        for partition, floor in floors.items():
            if floor > self._floors.get(partition, -1):
                await self._keep(self.state_table, _floor_key(partition), b"%d" % floor)
                self._floors[partition] = floor

    async def _write_checkpoint(self, exporter: str) -> None:
        partition, live = self.partition_of.get(exporter), self.network.exporters.get(exporter)
        if partition is None or live is None or partition not in self.loaded:
            return
        # every envelope of the exporter up to it is judged (or in the checkpoint it was taken over from)
        offset = max(self.judged_to.get(partition, -1), self._covered_to.get(exporter, -1))
        forgotten, live.forgotten = live.forgotten, []  # alerts of tickets folded away since the last one
        blob = checkpoint.freeze(live)
        slot = self._next_slot.get(exporter, checkpoint.SLOTS[0])
        records = checkpoint.chunks(slot, offset, blob)
        prefix = b"%d|%s|" % (partition, exporter.encode())
        for suffix, value in records:
            await self._keep(self.state_table, prefix + suffix, value)
        # after the whole checkpoint, in the same changelog partition: what it covers is deleted
        for suffix in checkpoint.stale_chunks(slot, len(records), self._chunks.get((exporter, slot), 0)):
            await self._keep(self.state_table, prefix + suffix, None)
        self._chunks[(exporter, slot)] = len(records)
        self._pending_from.pop(exporter, None)  # every envelope judged is at or before `offset`
        for alert_id in forgotten:
            await self._keep(self.published_table, prefix + alert_id.encode(), None)
        self._next_slot[exporter] = checkpoint.SLOTS[1 - checkpoint.SLOTS.index(slot)]
        self._since[exporter] = 0
        CHECKPOINTS.inc()
        CHECKPOINT_BYTES.observe(len(blob))

    def _published_of(self, exporter_id: str) -> Published:
        return self._published_loading.get(exporter_id, {})

    async def _sync_assignment(self) -> None:
        assigned = {tp.partition for tp in self.app.assignor.assigned_actives()
                    if tp.topic == self.internal_topic}
        for partition in self.loaded - assigned:
            self.loaded.discard(partition)
            self.judged_to.pop(partition, None)
            self._floors.pop(partition, None)
            gone = [e for e, p in self.partition_of.items() if p == partition]
            self.network.drop(gone)
            self.series.drop(gone)  # the new owner reports them: never two workers for long
            for exporter in gone:
                del self.partition_of[exporter]
                self._pending_from.pop(exporter, None)
                self._covered_to.pop(exporter, None)
                self._since.pop(exporter, None)
                self._next_slot.pop(exporter, None)
                for slot in checkpoint.SLOTS:
                    self._chunks.pop((exporter, slot), None)
            log.info("partition %d moved to another worker (%d exporters)", partition, len(gone))
        for partition in assigned - self.loaded:
            await self._ensure_loaded(partition)
        EXPORTERS.set(len(self.network.exporters))

    # ---- the clock ------------------------------------------------------------------------------

    def _read_progress(self) -> None:
        """How far each judging partition's input has been read: caught up when no intake that
        sent to it recently is catching up on a backlog and its own envelopes are all delivered;
        while catching up, the event time every lagging input partition had reached when the
        last envelope was sent (everything older has been forwarded to it, in order)."""
        recent = time.monotonic() - SENDER_SILENCE
        for partition in self.loaded:
            heard = [(w, catching) for w, catching, seen in self.senders[partition].values() if seen > recent]
            reached = [w for w, _ in heard if w is not None]
            self.progress[partition] = InputProgress(
                caught_up=not any(catching for _, catching in heard) and self.judging_behind.get(partition, 0) <= 0,
                reached=min(reached) if reached else None)

    def _progress_of(self, exporter_id: str) -> InputProgress:
        partition = self.partition_of.get(exporter_id)
        return self.progress.get(partition, CAUGHT_UP) if partition is not None else CAUGHT_UP

    async def _tick(self) -> None:
        tables: Any = self.app.tables
        if not tables.recovery.completed.is_set() or self.app.rebalancing:
            return
        await self._sync_assignment()
        await self._judge_stragglers()
        await self._write_checkpoints()
        self._read_progress()
        wall = now_micros()
        messages = self.network.tick(self.as_of if self.as_of is not None else wall, self.window, self._progress_of)
        started = [live.clock.now for live in self.network.exporters.values() if live.clock.latest is not None]
        if started:  # an exporter with no data yet has no clock to be behind
            CLOCK_BEHIND.set((wall - min(started)) / SECOND)
        noticed = now_micros()
        raised = stamp(noticed)  # when the monitor noticed: the wall clock, whatever the judging clock
        for message in messages:
            message["raised_at"] = raised
        if self.as_of is None:  # a fixed "now" has nothing to do with when deadlines pass
            for due in self.network.fired:
                DEADLINE_LAG.observe(max(0, noticed - due) / SECOND)
        if self._unsent:
            messages, self._unsent = [*self._unsent, *messages], []
        if messages:
            await self._publish_alerts(messages)
        if time.monotonic() >= self._next_snapshot:
            self._next_snapshot = time.monotonic() + self.settings.snapshot_seconds
            await self._publish_snapshots()

    async def _publish_alerts(self, messages: list[dict[str, Any]]) -> None:
        """Publish alert messages so that none is lost or left uncorrectable by a crash.

        Each message is first recorded as about to be sent (and that record made durable),
        then sent, then recorded as sent. A worker taking over after a crash knows every
        message that may have reached the topic, so it can still retract one that later data
        disproves, and it sends again the ones that may not have arrived.
        """
        for message in messages:
            await self._record(message, sent=False)
        await self.app.producer.flush()
        pending = []
        for message in messages:
            TRANSITIONS.labels(message["obligation"], message["severity"], message["status"]).inc()
            pending.append(await self.alerts.send(key=message["alert_id"].encode(), value=orjson.dumps(message)))
        await asyncio.gather(*pending)
        for message in messages:
            log.info("alert %s: %s %s on %s (%s, %s)", message["status"], message["obligation"], message["severity"],
                     message["subject"], message["exporter_id"], message["market"] or "all markets",
                     extra=logs.ids_of_alert(message))
        for message in messages:
            await self._record(message, sent=True)

    async def _keep(self, table: Any, key: bytes, value: bytes | None) -> None:
        """Set a table entry (delete it, for None) and hand its changelog record straight to the
        Kafka producer.

        Faust's own table writes wait in a buffer that its flush before a commit gives up on
        after 0.1 s without a send (a busy event loop), so a commit could overtake the record
        it depends on. Handed over here, the record is covered by the producer's flush that
        precedes every commit, which waits for the broker's acknowledgement.
        """
        if value is None:
            table.data.pop(key, None)
        else:
            table.data[key] = value
        sent = await self.app.producer.send(self._changelogs[id(table)], key, value, int(key.split(b"|", 1)[0]),
                                            None, None)
        asyncio.ensure_future(sent).add_done_callback(self._check_sent)

    def _check_sent(self, future: Any) -> None:
        exc = future.exception()
        if exc is not None:
            log.error("changelog send failed: %r", exc)

    async def _record(self, message: dict[str, Any], *, sent: bool) -> None:
        partition = self.partition_of.get(message["exporter_id"])
        if partition is not None:
            key = b"%d|%s|%s" % (partition, message["exporter_id"].encode(), message["alert_id"].encode())
            await self._keep(self.published_table, key, (b"1" if sent else b"0") + orjson.dumps(message))

    async def _publish_snapshots(self) -> None:
        wall = self.as_of if self.as_of is not None else now_micros()
        for snapshot in self.network.snapshots(0, wall=wall):
            self.series.update(snapshot)  # also when unchanged: a partition taken back republishes nothing
            key = f"{snapshot['exporter_id']}:{snapshot['market']}"
            # its freshness counts by state and clock; the lag itself moves every second
            freshness = snapshot["freshness"]
            content = orjson.dumps({**{k: v for k, v in snapshot.items() if k not in ("as_of", "freshness")},
                                    "freshness": [freshness["state"], freshness["clock"],
                                                  (freshness["latest_event_at"] or "")[:16]]})
            if self.last_snapshot.get(key) == content:
                continue
            self.last_snapshot[key] = content
            SNAPSHOTS.inc()
            await self.compliance.send(key=key.encode(), value=orjson.dumps(snapshot))


async def topic_depth(kafka: KafkaTarget, topic: str, known: dict[int, tuple[int, int]] | None,
                      timeout: float = 10.0) -> int:
    """The messages a topic holds: over its partitions, the true end offset minus the start offset.

    A broker may report a partition's end as the start of its last record batch plus one
    (Tansu 0.6), so when a partition's reported end has moved, its last batch is read to find
    the true end. `known` keeps (reported end, true end) per partition between calls, so a
    partition with nothing new costs no read. With `known` None the reported ends are taken as
    true (a broker that reports them so: Apache Kafka).
    """
    from aiokafka import TopicPartition

    # a dead letter can hold a message near the broker's size limit: fetch it whole
    options = {**client_options(kafka), "max_partition_fetch_bytes": 32 * 1024 * 1024,
               "fetch_max_bytes": 64 * 1024 * 1024}
    async with direct_consumer(options) as consumer:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return 0
        starts = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        if known is None:
            return sum(max(0, ends[tp] - starts[tp]) for tp in tps)
        moved = {tp: ends[tp] - 1 for tp in tps
                 if ends[tp] > starts[tp] and known.get(tp.partition, (-1, -1))[0] != ends[tp]}
        found = await fetch_from(consumer, moved, through=moved, timeout=timeout) if moved else {}
    for tp in moved:
        records = found.get(tp) or []
        true_end = max(ends[tp], records[-1].offset + 1 if records else 0)
        RECOVERED.labels("deadletter_past_reported_end").inc(true_end - ends[tp])
        known[tp.partition] = (ends[tp], true_end)
    held = 0
    for tp in tps:
        reported, true_end = known.get(tp.partition, (ends[tp], ends[tp]))
        held += max(0, (true_end if reported == ends[tp] else ends[tp]) - starts[tp])
    return held


def _readable_ids(value: bytes) -> dict[str, Any]:
    """The ids a refused message carries, when it is a JSON object that has them (for its log line)."""
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(document, dict):
        return {}
    return {key: document[key] for key in ("event_id", "ticket_id", "exporter_id", "market")
            if isinstance(document.get(key), str)}


async def read_registry_topic(kafka: KafkaTarget, topic: str, timeout: float = 10.0
                              ) -> dict[str, ExporterRegistration]:
    """Every valid registration on the (compacted) registry topic, the latest per exporter.

    Read once at start with no consumer group, so every worker knows the whole registry (a
    distributor's brands come from its automakers, whose partition may be another worker's);
    later registrations reach every worker through the judging stage.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(**client_options(kafka), enable_auto_commit=False, group_id=None)
    await consumer.start()
    registrations: dict[str, ExporterRegistration] = {}
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()  # the topic may have just been made
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return registrations
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            positions = [await consumer.position(tp) for tp in tps]
            if all(position >= ends[tp] for position, tp in zip(positions, tps, strict=True)):
                break
            batches = await consumer.getmany(*tps, timeout_ms=500)
            for records in batches.values():
                for record in records:
                    try:
                        registration = ExporterRegistration.model_validate_json(record.value or b"")
                    except ValidationError:
                        continue  # dead-lettered by the intake stage that owns its partition
                    registrations[registration.exporter_id] = registration
    finally:
        await consumer.stop()
    return registrations


def run_worker(settings: WorkerSettings, registry: Mapping[str, ExporterRegistration], policy: PolicyBook,
               history: bool = True, webhooks: tuple[Any, ...] | list[Any] = (), delivery: Any = None, *,
               stage: Stage | None = None) -> None:
    """Create the topics if need be, read the registry topic, and run a worker until Ctrl-C or SIGTERM.

    With `stage` None, the whole worker: the judging stage here and the intake stage in a child
    process forked from this one (`monitor.stream.stages`); with a stage, that stage alone.
    With `history` (and a stage other than the intake), a second child runs the history sink
    (`monitor.history.sink`); it enqueues each new alert transition for the `webhooks`
    (`monitor.delivery.webhooks.Webhook`). With `history`, webhooks and `delivery` (the
    `monitor.delivery.settings.DeliverySettings`), the webhook deliverer runs there too.
    Logging stays as the caller set it up (`monitor.logs.configure`):
    Faust's own set-up, which would replace the root handlers with its format, is skipped.
    """
    from monitor.embedded.broker import free_port
    from monitor.embedded.deviations import reports_short_end_offsets
    from monitor.stream.topics import ensure_topics

    names = TopicNames.of(settings.topic_prefix)
    kafka = kafka_client_options(settings)
    # the internal topic and the changelogs too: made by Faust, one could be missing from the
    # metadata of the group's first assignment (Apache Kafka), which would then give the judging
    # stage no partition, or rebalance seconds later when the metadata shows it
    asyncio.run(ensure_topics(kafka, names, partitions=settings.partitions, replication=settings.topic_replication,
                              internal=(names.internal(settings.app_id),),
                              changelogs=changelog_topics(settings.app_id)))
    short_end_offsets = asyncio.run(reports_short_end_offsets(kafka))

    def run_intake(intake_settings: WorkerSettings) -> None:
        asyncio.run(carry_committed_offsets(kafka, settings.app_id, intake_group(settings.app_id), names.inputs))
        (settings.data_dir / "faust-intake").mkdir(parents=True, exist_ok=True)
        _run_app(StreamWorker(intake_settings, registry, policy, short_end_offsets=short_end_offsets, stage="intake"))

    if stage == "intake":
        run_intake(settings)
        return
    children = []
    if stage is None:  # forked now, before this process reads or starts anything more
        port = free_port()
        intake = StageProcess("intake", settings.web_host, port)
        intake.start(lambda: run_intake(settings.model_copy(update={"web_port": port})))
        children.append(intake)
    if history:
        from monitor.delivery.deliverer import Deliverer
        from monitor.history.sink import HistorySink

        sink = HistorySink.from_settings(settings, policy, registry, webhooks=webhooks)
        deliverer = Deliverer.from_settings(delivery, webhooks) if webhooks and delivery is not None else None
        history_port = free_port()
        history_stage = StageProcess("history", settings.web_host, history_port)
        history_stage.start(lambda: run_history_stage(sink, deliverer, settings.web_host, history_port))
        children.append(history_stage)
    known = asyncio.run(read_registry_topic(kafka, names.registry))
    if short_end_offsets:
        log.info("the broker is the embedded one: its end offsets can fall short, so changelog tails and the "
                 "dead-letter depth are read past them")
    log.info("registry: %d exporters from the file, %d from %s", len(registry), len(known), names.registry)
    (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)  # Faust's own files (no table data)
    worker = StreamWorker(settings, {**registry, **known}, policy, short_end_offsets=short_end_offsets,
                          children=children)
    try:
        _run_app(worker, *([StopTogether(children)] if children else []))
    finally:
        for child in children:
            child.stop()


def _run_app(worker: StreamWorker, *services: Any) -> None:
    """Run a stage's Faust app (with `services` in its event loop) until it stops."""
    runner = StageWorker(worker.app, *services, override_logging=False)
    runner.spinner = None  # it would print to stdout; "Ready" is logged instead
    try:
        runner.execute_from_commandline()
    finally:
        if worker.fatal is not None:
            sys.exit(2)
