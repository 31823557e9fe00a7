"""The Kafka topics of the monitor (CONTRACT.md, "Kafka topics"), and creating them."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiokafka.admin import AIOKafkaAdminClient

    from monitor.kafka import KafkaTarget

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "aftersales."

# short name (the part after the prefix) of each topic, by attribute
_SHORT = {
    "tickets": "service-tickets",
    "stock": "parts-stock",
    "outlets": "outlet-status",
    "registry": "registry",
    "alerts": "alerts",
    "compliance": "compliance",
    "deadletter": "deadletter",
    "by_exporter": "events-by-exporter",
}
_COMPACTED = ("registry", "compliance")  # latest value per key is the state: compacted, never deleted
# A dead letter carries its input whole (base64 when not UTF-8, JSON-escaped otherwise), so it can be
# several times an input message at the broker's limit (Apache Kafka: 1 MiB): its topic takes up to this
DEADLETTER_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
# A worker's changelog topics (each exporter's latest checkpoint, every alert message published)
# are compacted within minutes of being written rather than after Kafka's defaults (a segment
# rolls after 7 days), so that a worker taking a partition over reads little more than the keys
# that still hold a value, however long the history. Tombstones stay an hour: far longer than
# a takeover reads.
CHANGELOG_CONFIG = {"segment.ms": str(5 * 60_000), "max.compaction.lag.ms": str(5 * 60_000),
                    "min.cleanable.dirty.ratio": "0.1", "delete.retention.ms": str(60 * 60_000)}


@dataclass(frozen=True)
class TopicNames:
    """Every topic's full name under one prefix (default "aftersales.")."""

    prefix: str = DEFAULT_PREFIX
    tickets: str = field(init=False)
    stock: str = field(init=False)
    outlets: str = field(init=False)
    registry: str = field(init=False)
    alerts: str = field(init=False)
    compliance: str = field(init=False)
    deadletter: str = field(init=False)
    by_exporter: str = field(init=False)  # internal: input events re-keyed by exporter_id

    def __post_init__(self) -> None:
        for attribute, short in _SHORT.items():
            object.__setattr__(self, attribute, self.prefix + short)

    @classmethod
    def of(cls, prefix: str = DEFAULT_PREFIX) -> TopicNames:
        """The topic names under `prefix`."""
        return cls(prefix)

    @property
    def inputs(self) -> tuple[str, str, str, str]:
        """The four input topics: service tickets, parts stock, outlet status, registry."""
        return (self.tickets, self.stock, self.outlets, self.registry)

    @property
    def all(self) -> tuple[str, ...]:
        """Every topic of the contract, inputs first. The internal topic is left out: each consumer
        group has its own (`internal(app_id)`), which its workers create."""
        return tuple(getattr(self, attribute) for attribute in _SHORT if attribute != "by_exporter")

    @property
    def compacted(self) -> tuple[str, ...]:
        """The topics whose latest value per key is the state (cleanup.policy=compact)."""
        return tuple(getattr(self, attribute) for attribute in _COMPACTED)

    @property
    def short_names(self) -> Mapping[str, str]:
        """Full topic name → short name ("aftersales.service-tickets" → "service-tickets")."""
        return MappingProxyType({getattr(self, attribute): short for attribute, short in _SHORT.items()})

    def internal(self, app_id: str) -> str:
        """The internal topic of one consumer group (input re-keyed by exporter): one per group, so two
        groups on one prefix never read each other's envelopes."""
        return f"{self.by_exporter}.{app_id}"

    def short(self, topic: str) -> str:
        """The short name of one of these topics; KeyError for any other topic."""
        return self.short_names[topic]


async def ensure_topics(kafka: KafkaTarget, names: TopicNames, partitions: int = 8, replication: int = 1,
                        extra_config: Mapping[str, str] | None = None, internal: tuple[str, ...] = (),
                        changelogs: tuple[str, ...] = ()) -> list[str]:
    """Create whichever of the monitor's topics do not exist yet; return the names it created.

    `kafka` is the bootstrap servers, or the client options of `monitor.kafka.kafka_client_options`
    (security included). Every topic gets `partitions` partitions and `replication` replicas;
    registry and compliance also get cleanup.policy=compact. `extra_config` is
    added to every topic's config. `internal` names more topics to create the same way (a
    worker's internal topic: made before its consumer joins the group, so the group's first
    assignment already has its partitions), `changelogs` the changelog topics of a worker's
    tables (compacted, with CHANGELOG_CONFIG: as Faust would make them, but before the group's
    first assignment, which would otherwise lack one made a moment too late, and rebalance
    seconds later when it appears). Topics that already exist, or that another
    process creates at the same time, are left as they are (their partition
    count is not checked or changed). Raises aiokafka's KafkaError when the
    broker cannot be reached or refuses a topic for any other reason.
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

    from monitor.kafka import client_options

    admin = AIOKafkaAdminClient(**client_options(kafka), client_id="aftersales-monitor-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [topic for topic in (*names.all, *internal, *changelogs) if topic not in existing]
        if not wanted:
            return []
        compacted = {*names.compacted, *changelogs}
        new = []
        for topic in wanted:
            config = dict(extra_config or {})
            if topic in changelogs:
                config.update(CHANGELOG_CONFIG)
            if topic in compacted:
                config["cleanup.policy"] = "compact"
            if topic == names.deadletter:
                config.setdefault("max.message.bytes", str(DEADLETTER_MAX_MESSAGE_BYTES))
            new.append(NewTopic(topic, partitions, replication, topic_configs=config))
        response = await admin.create_topics(new)
        created: list[str] = []
        for topic, error_code, *rest in response.topic_errors:
            if error_code == 0:
                created.append(topic)
                continue
            error = for_code(error_code)
            if error is TopicAlreadyExistsError:
                log.debug("topic %s was created meanwhile by someone else", topic)
                continue
            message = rest[0] if rest and rest[0] else error.__name__
            raise KafkaError(f"the broker refused to create topic {topic}: {message} (error code {error_code})")
        if created:
            log.info("created topics %s (%d partitions, replication factor %d)", ", ".join(created), partitions,
                     replication)
            await _warn_unless_compacted(admin, [topic for topic in created if topic in compacted])
        return created
    finally:
        await admin.close()


async def _warn_unless_compacted(admin: AIOKafkaAdminClient, topics: list[str]) -> None:
    """Log a warning for each of `topics` whose broker does not report cleanup.policy=compact.

    Best effort: the check itself failing is logged, never raised, because the
    topics exist either way and a broker may simply not describe configs.
    """
    if not topics:
        return
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
    from aiokafka.errors import KafkaError

    try:
        # all of each topic's configs: naming the wanted key makes Tansu 0.6 drop the connection
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t) for t in topics])
    except (KafkaError, OSError) as exc:
        log.warning("could not check that %s are compacted (%r); check the broker's topic config",
                    ", ".join(topics), exc)
        return
    policies: dict[str, str | None] = dict.fromkeys(topics)
    for response in responses:
        for _code, _message, _kind, name, entries in response.resources:
            for entry in entries:
                if entry[0] == "cleanup.policy":
                    policies[name] = entry[1]
    for topic, policy in policies.items():
        if policy is None or "compact" not in policy:
            log.warning("topic %s reports cleanup.policy=%s, not compact: its old values may be deleted "
                        "by retention instead of kept per key", topic, policy)
