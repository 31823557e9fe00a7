"""The three-node Apache Kafka cluster of the failure and deploy tests: one per session.

Three controllers (a static KRaft quorum) and three brokers, with the topic settings deploy/
documents: replication factor 3 and `min.insync.replicas=2` for every topic, compaction where
the topic-creation job says. Each test starts from a whole cluster (`whole_cluster` restarts
any node a test killed or froze and waits until every partition is fully replicated again).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.services.kafka import KafkaCluster, KafkaNode, KafkaUnavailable, run_tool
from tests.services.required import missing
from tests.streaming import BROKER_KINDS

REPLICATION = 3
MIN_INSYNC = 2


@pytest.fixture(scope="package")  # six JVMs: stopped once this folder's tests are done, not at the session's end
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    cluster = KafkaCluster(tmp_path_factory.mktemp("kafka-cluster"), brokers=3, controllers=3,
                           broker_config={"min.insync.replicas": str(MIN_INSYNC),
                                          "default.replication.factor": str(REPLICATION)})
    try:
        cluster.start()
    except KafkaUnavailable as exc:
        missing(f"Apache Kafka cannot run: {exc}")
    BROKER_KINDS[cluster.bootstrap] = "the three-broker Apache Kafka cluster"
    try:
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture
def whole_cluster(kafka_cluster: KafkaCluster) -> Iterator[KafkaCluster]:
    """The session's cluster with every node running and every partition fully replicated."""
    restore(kafka_cluster)
    yield kafka_cluster
    restore(kafka_cluster)


def restore(cluster: KafkaCluster, timeout: float = 120.0) -> None:
    """Thaw frozen nodes, start killed ones (same data, same configuration), and wait until no
    partition is under-replicated."""
    for node in cluster.nodes:
        if node.running:
            node.thaw()
    restarted = [node for node in cluster.nodes if not node.running]
    for node in restarted:
        node.start(cluster.classpath)
    for node in restarted:
        node.wait_started()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not under_replicated(cluster):
            return
        time.sleep(0.5)
    raise AssertionError("partitions still under-replicated after the cluster was restored:\n"
                         + under_replicated(cluster))


def under_replicated(cluster: KafkaCluster) -> str:
    """The partitions whose in-sync replicas are fewer than their replicas, one per line, as
    `kafka-topics --describe --under-replicated-partitions` lists them: '' when there is none
    (read with aiokafka's admin client: a JVM started for the tool took seconds each time)."""
    return asyncio.run(_under_replicated(cluster.bootstrap))


async def _under_replicated(bootstrap: str) -> str:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        await admin.start()
        lines = [f"Topic: {topic['topic']}\tPartition: {p['partition']}\tLeader: {p['leader']}\t"
                 f"Replicas: {','.join(map(str, p['replicas']))}\tIsr: {','.join(map(str, p['isr']))}"
                 for topic in await admin.describe_topics(await admin.list_topics())
                 for p in topic["partitions"] if len(p["isr"]) < len(p["replicas"])]
    except KafkaError as exc:
        return f"the cluster cannot be described: {exc!r}"
    finally:
        await admin.close()
    return "\n".join(lines)


def active_controller(cluster: KafkaCluster) -> KafkaNode:
    """The controller that leads the KRaft quorum now (kafka-metadata-quorum describe --status)."""
    bootstrap = ",".join(f"127.0.0.1:{node.controller_port}" for node in cluster.controllers if node.running)
    done = run_tool(cluster.classpath, "org.apache.kafka.tools.MetadataQuorumCommand",
                    "--bootstrap-controller", bootstrap, "describe", "--status")
    found = re.search(r"^LeaderId:\s+(\d+)", done.stdout, re.MULTILINE)
    assert found, done.stdout
    return cluster.node(int(found.group(1)))


async def partition_leaders(bootstrap: str, topics: list[str]) -> dict[tuple[str, int], int]:
    """(topic, partition) -> the node id of its leader now (-1 while it has none), from the brokers'
    metadata; `bootstrap` should name only brokers that answer (not a frozen one)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        return {(topic["topic"], p["partition"]): p["leader"] for topic in await admin.describe_topics(topics)
                for p in topic["partitions"]}
    finally:
        await admin.close()


def busiest_leader(cluster: KafkaCluster, leaders: dict[tuple[str, int], int], topics: list[str]) -> KafkaNode:
    """The broker that leads most partitions of `topics` (the lowest id among equals)."""
    counts = Counter(leader for (topic, _), leader in leaders.items() if topic in topics and leader >= 0)
    assert counts, leaders
    most = max(counts.values())
    return cluster.node(min(node for node, count in counts.items() if count == most))
