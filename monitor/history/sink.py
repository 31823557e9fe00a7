"""The history sink: the alerts, compliance and registry topics into the history store.

A Kafka consumer in its own group (`<app_id>-history`) reads the three topics; each batch
fetched is written in one transaction, and its offsets are committed only after that
transaction committed. A crash or a stop at any point therefore leaves, at worst, records
that are read again, and the store's writes are idempotent (a replay adds nothing).

While the store cannot be written (a database restart, a network cut), the batch is tried
again with exponential back-off, as long as it takes: nothing is committed meanwhile, so
nothing is lost. Messages that are not what their topic carries are logged and skipped
(the worker dead-letters bad input; these can only come from elsewhere).

Given webhooks (MONITOR_WEBHOOKS), the store enqueues a delivery of each new alert transition
for every webhook that may see it, in the batch's transaction (`monitor.delivery.outbox`).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from prometheus_client import Counter, Gauge, Histogram
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

from monitor.contracts.outputs import AppliedPolicy
from monitor.contracts.registry import ExporterRegistration
from monitor.history.store import (
    ALERT,
    REGISTRATION,
    SNAPSHOT,
    HistoryStore,
    Source,
    applied_policies,
    check,
    store_errors,
)
from monitor.stopping import run_until_stopped
from monitor.stream.topics import TopicNames

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord, TopicPartition

    from monitor.delivery.webhooks import Webhook
    from monitor.obligations.policy import PolicyBook
    from monitor.stream.settings import WorkerSettings

log = logging.getLogger(__name__)

T = TypeVar("T")

CONSUMED = Counter("monitor_history_records_consumed_total", "Records the history sink read, by topic (records)",
                   ["topic"])
IGNORED = Counter("monitor_history_records_ignored_total",
                  "Records the history sink skipped, by topic and reason (records)", ["topic", "reason"])
ROWS_WRITTEN = Counter("monitor_history_rows_written_total",
                       "Records that changed the history store (new transitions, figures, registrations), by kind "
                       "(records)", ["kind"])
# one batch is up to 500 records in one transaction: milliseconds on a quiet store, seconds for a
# batch of snapshots (each updates its daily rows), more on a store under load
WRITE_SECONDS = Histogram("monitor_history_write_seconds",
                          "Time to write one fetched batch of records into the history store in one transaction, "
                          "successful writes only (seconds)",
                          buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                                   30.0, 60.0))
RETRIES = Counter("monitor_history_store_retries_total",
                  "Store operations tried again after the store failed: unreachable, restarting, ... (attempts)")
STORE_UP = Gauge("monitor_history_store_up",
                 "Whether the history sink's last store operation succeeded (1 yes, 0 no)")
COMMITTED = Counter("monitor_history_batches_committed_total",
                    "Batches whose offsets the history sink committed after storing them (batches)")
READ_DIRECTLY = Counter("monitor_history_records_read_directly_total",
                        "Records at the end of a quiet partition that the sink's consumer did not deliver, read "
                        "from the topic directly and stored (records)")

QUIET_SECONDS = 2.0  # a partition that delivered nothing this long is read past the consumer's position
RECHECK_SECONDS = 30.0  # and read so again at this interval while it stays quiet
PENDING_SECONDS = 10.0  # a partition whose consumer knows of more records is read so only after this long
# the consumer options that belong to a consumer group, left out of the sink's direct reads
_GROUP_OPTIONS = frozenset({"session_timeout_ms", "heartbeat_interval_ms", "rebalance_timeout_ms",
                            "group_instance_id"})


@dataclass
class SinkStats:
    """What one sink has done since it started."""

    consumed: int = 0  # records read
    stored: int = 0  # records that changed the store
    ignored: int = 0  # records skipped (not JSON, not what the topic carries, tombstones)
    batches: int = 0  # batches written and committed
    retries: int = 0  # store operations tried again
    seconds_down: float = 0.0  # time spent retrying a store that failed
    read_directly: int = 0  # records the consumer did not deliver, read from the topic directly


@dataclass
class _LeftOut:
    """When each partition last delivered a record and was last read past the consumer's position."""

    since: float  # when the sink's consumer started (monotonic)
    delivered: dict[Any, float] = field(default_factory=dict)
    checked: dict[Any, float] = field(default_factory=dict)
    next_check: float = 0.0


class HistorySink:
    """Reads the alerts, compliance and registry topics of one prefix into a history store."""

    def __init__(self, *, bootstrap: str, names: TopicNames, group_id: str, store_url: str,
                 policies: list[AppliedPolicy] | None = None,
                 registry: Mapping[str, ExporterRegistration] | None = None, batch_size: int = 500,
                 poll_seconds: float = 0.5, recheck_seconds: float = RECHECK_SECONDS,
                 pending_seconds: float = PENDING_SECONDS, backoff_initial: float = 0.2,
                 backoff_max: float = 10.0,
                 consumer_options: Mapping[str, Any] | None = None, webhooks: Sequence[Webhook] = ()) -> None:
        self.bootstrap = bootstrap
        self.names = names
        self.group_id = group_id
        self.store_url = store_url
        self.policies = list(policies or [])
        self.registry = dict(registry or {})
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.recheck_seconds = recheck_seconds  # how often a quiet partition is read past the consumer's position
        self.pending_seconds = pending_seconds  # how long a consumer that knows of more records is trusted
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.consumer_options = dict(consumer_options or {})
        # the short reads of partitions the consumer left out: the same broker and security, no group
        self.direct_reads = {"bootstrap_servers": bootstrap,
                             **{k: v for k, v in self.consumer_options.items() if k not in _GROUP_OPTIONS}}
        self.webhooks = tuple(webhooks)  # each new alert transition is enqueued for these (monitor.delivery)
        self.kinds = {names.alerts: ALERT, names.compliance: SNAPSHOT, names.registry: REGISTRATION}
        self.stats = SinkStats()

    @property
    def store_url_shown(self) -> str:
        """The store's URL with any password hidden, for logs and messages."""
        from sqlalchemy.engine import make_url

        return make_url(self.store_url).render_as_string(hide_password=True)

    @classmethod
    def from_settings(cls, settings: WorkerSettings, policy: PolicyBook,
                      registry: Mapping[str, ExporterRegistration] | None = None,
                      webhooks: Sequence[Webhook] = ()) -> HistorySink:
        """The sink a worker (or `monitor sink`) runs: its bootstrap servers and Kafka security, topic prefix, group
        `<app_id>-history`, store URL, consumer timeouts, and the policy book's versions."""
        from monitor.history.store import history_url
        from monitor.kafka import METADATA_MAX_AGE_MS, kafka_security_options

        versions = [policy.earliest().version, *(t.version for t in policy.changes())]
        return cls(bootstrap=settings.kafka_bootstrap, names=TopicNames.of(settings.topic_prefix),
                   group_id=f"{settings.app_id}-history", store_url=history_url(settings),
                   policies=applied_policies(policy.describe(versions)), registry=registry, webhooks=webhooks,
                   consumer_options={
                       **kafka_security_options(settings),  # MONITOR_KAFKA_* security, as every client
                       "session_timeout_ms": round(settings.session_timeout_seconds * 1000),
                       "heartbeat_interval_ms": round(settings.heartbeat_seconds * 1000),
                       "rebalance_timeout_ms": round(settings.rebalance_timeout_seconds * 1000),
                       "group_instance_id": settings.instance_id,
                       "metadata_max_age_ms": METADATA_MAX_AGE_MS})

    async def run(self) -> None:
        """Store every record of the three topics until cancelled.

        Opens the store (running its migrations), records the policy versions and the registry
        file, then consumes. Cancellation is the way to stop it: the batch in hand, if any, is
        neither stored nor committed (it is read again next time), and the consumer and the
        store are closed.
        """
        store = await self._retrying("opening the store",
                                     lambda: HistoryStore.open(self.store_url, webhooks=self.webhooks))
        try:
            if self.policies:
                await self._retrying("recording the policy versions", lambda: store.record_policies(self.policies))
                log.info("history: policy versions %s recorded", ", ".join(p.version for p in self.policies))
            if self.registry:
                documents = [r.model_dump(mode="json") for r in self.registry.values()]
                await self._retrying("recording the registry file",
                                     lambda: store.record_file_registrations(documents))
            await self._consume(store)
        finally:
            await store.close()

    async def _consume(self, store: HistoryStore) -> None:
        from aiokafka.errors import KafkaError

        consumer = await self._retrying("connecting to Kafka", self._connect, retry_on=(KafkaError, OSError))
        left_out = _LeftOut(time.monotonic())
        try:
            log.info("history: storing %s into %s (consumer group %s)", ", ".join(self.kinds), store.url,
                     self.group_id)
            while True:
                batches = await consumer.getmany(timeout_ms=round(self.poll_seconds * 1000),
                                                 max_records=self.batch_size)
                now = time.monotonic()
                for tp, records in batches.items():
                    if records:
                        left_out.delivered[tp] = now
                if batches:
                    await self._store_and_commit(consumer, store, batches)
                if now >= left_out.next_check:
                    left_out.next_check = now + QUIET_SECONDS
                    await self._read_left_out(consumer, store, left_out, now)
        finally:
            await consumer.stop()

    async def _store_and_commit(self, consumer: Any, store: HistoryStore,
                                batches: Mapping[TopicPartition, list[ConsumerRecord[Any, Any]]]) -> None:
        """Store the records of a batch in one transaction, then commit their offsets."""
        from aiokafka.errors import KafkaError

        items = self._items(batches)
        if items:
            await self._retrying("writing a batch", functools.partial(self._write, store, items))
        offsets = {tp: records[-1].offset + 1 for tp, records in batches.items() if records}
        try:
            await consumer.commit(offsets)
        except KafkaError as exc:
            # stored but not committed: read again later, which stores nothing twice
            log.warning("history: committing offsets failed (%r); those records will be read again", exc)
            return
        self.stats.batches += 1
        COMMITTED.inc()

    async def _read_left_out(self, consumer: Any, store: HistoryStore, left_out: _LeftOut, now: float) -> None:
        """Store the records at the end of a quiet partition that the consumer did not deliver.

        On the embedded broker, aiokafka's consumer can stop one record batch short of a
        partition's end and deliver that batch only when more records follow, which on a quiet
        topic may be never. So every few seconds each partition that delivered nothing for
        QUIET_SECONDS is read directly past the consumer's position (once when it goes quiet,
        then every `recheck_seconds`; after `pending_seconds` when its consumer knows of more, or
        has not fetched yet): records written more than QUIET_SECONDS ago are stored and
        committed, and the consumer is moved past them. Counted by
        `monitor_history_records_read_directly_total`.
        """
        from aiokafka.errors import KafkaError

        from monitor.kafka.reads import records_after

        starts: dict[TopicPartition, int] = {}
        for tp in consumer.assignment():
            came = left_out.delivered.get(tp, left_out.since)
            checked = left_out.checked.get(tp)
            if now - came < QUIET_SECONDS or (checked is not None and checked >= came
                                               and now - checked < self.recheck_seconds):
                continue  # not quiet, or read past its position since it went quiet and not due again
            try:
                position = await asyncio.wait_for(consumer.position(tp), 1.0)
                known_end = consumer.highwater(tp)  # from its last fetch; None before its first
            except (TimeoutError, KafkaError):  # no position yet, or no longer assigned (a rebalance)
                continue
            # the consumer knows of more (or has not fetched yet): the records come in their turn, unless
            # they have not for `pending_seconds` (the embedded broker's short end can be that "more")
            if (known_end is None or known_end > position) and now - came < self.pending_seconds:
                continue
            starts[tp] = position
        if not starts:
            return
        try:
            found = await records_after(self.direct_reads, starts)
        except (TimeoutError, KafkaError, OSError) as exc:
            log.warning("history: reading the ends of %d quiet partitions failed (%r); trying again later",
                        len(starts), exc)
            return
        # the consumer has had QUIET_SECONDS to deliver a record before it counts as left out
        written_before = int(time.time() * 1000 - QUIET_SECONDS * 1000)
        left: dict[TopicPartition, list[ConsumerRecord[Any, Any]]] = {}
        for tp, fetched in found.items():
            records = [r for r in fetched if r.offset >= starts[tp]]
            old = list(itertools.takewhile(lambda r: r.timestamp <= written_before, records))
            if len(old) == len(records):
                left_out.checked[tp] = now  # else looked at again at the next check
            if old:
                left[tp] = old
        if not left:
            return
        read = sum(len(records) for records in left.values())
        READ_DIRECTLY.inc(read)
        self.stats.read_directly += read
        log.warning("history: the consumer did not deliver %d records at the end of %s; read from the topics "
                    "directly", read, ", ".join(f"{tp.topic}[{tp.partition}]@{records[0].offset}"
                                                for tp, records in sorted(left.items())))
        await self._store_and_commit(consumer, store, left)
        for tp, records in left.items():
            consumer.seek(tp, records[-1].offset + 1)
            left_out.delivered[tp] = now

    async def _connect(self) -> Any:
        """A started consumer of the three topics in the sink's group: a new one for each attempt
        (an aiokafka consumer cannot be started twice). A session timeout the broker refuses
        (Apache Kafka's group.min.session.timeout.ms, 6 s by default) is a setting to change,
        not a fault to wait out: it is raised as such."""
        from aiokafka import AIOKafkaConsumer
        from aiokafka.errors import InvalidSessionTimeoutError

        from monitor.kafka import KafkaSettingRefused

        consumer = AIOKafkaConsumer(
            *self.kinds, bootstrap_servers=self.bootstrap, group_id=self.group_id, client_id=self.group_id,
            enable_auto_commit=False, auto_offset_reset="earliest", **self.consumer_options)
        try:
            await consumer.start()
        except InvalidSessionTimeoutError:
            await consumer.stop()
            timeout = self.consumer_options.get("session_timeout_ms")
            raise KafkaSettingRefused(f"the broker refuses the consumer session timeout of {timeout} ms: set "
                                 "MONITOR_SESSION_TIMEOUT_SECONDS within the broker's group.min.session.timeout.ms "
                                 "and group.max.session.timeout.ms (6 s to 30 min by default)") from None
        except BaseException:
            await consumer.stop()
            raise
        return consumer

    def _items(self, batches: Mapping[TopicPartition, list[ConsumerRecord[Any, Any]]]
               ) -> list[tuple[str, dict[str, Any], Source]]:
        items: list[tuple[str, dict[str, Any], Source]] = []
        for tp, records in batches.items():
            kind = self.kinds[tp.topic]
            short = self.names.short(tp.topic)
            for record in records:
                self.stats.consumed += 1
                CONSUMED.labels(short).inc()
                reason = None
                if record.value is None:
                    reason = "tombstone"
                else:
                    try:
                        document = orjson.loads(record.value)
                        check(kind, document)
                    except orjson.JSONDecodeError:
                        reason = "not JSON"
                    except ValueError as exc:
                        reason = "invalid"
                        log.warning("history: %s[%d]@%d skipped: %s", tp.topic, tp.partition, record.offset, exc)
                if reason is not None:
                    self.stats.ignored += 1
                    IGNORED.labels(short, reason).inc()
                    continue
                items.append((kind, document, Source(tp.topic, tp.partition, record.offset)))
        return items

    async def _write(self, store: HistoryStore, items: list[tuple[str, dict[str, Any], Source]]) -> None:
        started = time.perf_counter()
        counts = await store.record_batch_counts(items)
        WRITE_SECONDS.observe(time.perf_counter() - started)
        for kind, count in counts.items():
            ROWS_WRITTEN.labels(kind).inc(count)
            self.stats.stored += count
        if log.isEnabledFor(logging.DEBUG):
            from monitor.logs import ids_of_alert

            for kind, document, source in items:
                if kind == ALERT:  # stored, or found stored already (a record read again)
                    log.debug("history: alert transition %s at %s[%d]@%d written", document.get("status"),
                              source.topic, source.partition, source.offset, extra=ids_of_alert(document))

    async def _retrying(self, what: str, action: Callable[[], Awaitable[T]],
                        retry_on: tuple[type[BaseException], ...] | None = None) -> T:
        """`action()`, tried again with exponential back-off for as long as it fails with one of
        `retry_on` (default: the store's errors); cancel to give up. Any other error propagates."""
        failed_at: list[float] = []

        async def attempt() -> T:
            return await action()

        def before_sleep(state: RetryCallState) -> None:
            if not failed_at:
                failed_at.append(time.monotonic())
            self.stats.retries += 1
            RETRIES.inc()
            STORE_UP.set(0)
            wait = state.next_action.sleep if state.next_action else 0.0
            error = state.outcome.exception() if state.outcome else None
            log.warning("history: %s failed (attempt %d: %r); trying again in %.1f s, nothing committed meanwhile",
                        what, state.attempt_number, error, wait)

        retrying = AsyncRetrying(retry=retry_if_exception_type(retry_on or store_errors()), before_sleep=before_sleep,
                                 reraise=True,
                                 wait=wait_exponential(multiplier=self.backoff_initial, min=self.backoff_initial,
                                                       max=self.backoff_max))
        try:
            result: T = await retrying(attempt)
        finally:
            down = time.monotonic() - failed_at[0] if failed_at else 0.0
            self.stats.seconds_down += down
        if failed_at:
            log.warning("history: %s succeeded again after %.1f s", what, down)
        STORE_UP.set(1)
        return result


async def run_sink(sink: HistorySink) -> None:
    """Run a sink until Ctrl-C or SIGTERM, then stop it cleanly (nothing half-done is committed)."""
    await run_until_stopped(sink.run(), name="history-sink", what="history")
    s = sink.stats
    log.info("history: stopped after %d records read, %d stored, %d skipped, %d retries", s.consumed, s.stored,
                s.ignored, s.retries)
