"""The three-node Apache Kafka cluster of the failure and deploy tests: one per session.

Three controllers (a static KRaft quorum) and three brokers, with the topic settings deploy/
documents: replication factor 3 and `min.insync.replicas=2` for every topic, compaction where
the topic-creation job says. Each test starts from a whole cluster (`whole_cluster` restarts
any node a test killed or froze and waits until every partition is fully replicated again).
"""

from __future__ import annotations

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
        time.sleep(1.0)
    raise AssertionError("partitions still under-replicated after the cluster was restored:\n"
                         + under_replicated(cluster))


def under_replicated(cluster: KafkaCluster) -> str:
    """kafka-topics --describe --under-replicated-partitions: '' when every partition has all its replicas."""
    done = run_tool(cluster.classpath, "org.apache.kafka.tools.TopicCommand", "--bootstrap-server", cluster.bootstrap,
                    "--describe", "--under-replicated-partitions", check=False)
    if done.returncode != 0:
        return done.stderr.strip() or f"kafka-topics exited with {done.returncode}"
    return done.stdout.strip()


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
