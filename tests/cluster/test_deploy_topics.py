"""deploy/'s topic-creation job, run against the three-node cluster: the topics it makes are the
ones a worker expects, and a worker started on them creates none of the contract's topics itself.

The job's script is taken from deploy/docker-compose.yml as it stands (Compose's `$$` read as
`$`) and run by `sh` with the environment the file documents for a cluster of three brokers:
kafka-topics is Apache Kafka's own (`org.apache.kafka.tools.TopicCommand` from the same jars).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from monitor.stream.topics import CHANGELOG_CONFIG, DEADLETTER_MAX_MESSAGE_BYTES, TopicNames
from monitor.stream.worker import changelog_topics
from tests.cluster.conftest import MIN_INSYNC, REPLICATION
from tests.postgres import run_apart
from tests.services.kafka import _QUIET_LOG4J, KafkaCluster
from tests.streaming import ROOT, WorkerProcess, unique_names

COMPOSE = ROOT / "deploy" / "docker-compose.yml"
PARTITIONS = 8


def topics_job() -> tuple[str, dict[str, str]]:
    """The topics job's script (as sh gets it after Compose's interpolation) and its environment."""
    service = yaml.safe_load(COMPOSE.read_text())["services"]["topics"]
    assert service["entrypoint"] == ["/bin/sh", "-ec"]
    return service["command"][0].replace("$$", "$"), {k: str(v) for k, v in service["environment"].items()}


def kafka_topics_command(directory: Path, classpath: str) -> Path:
    """An executable that runs Kafka's kafka-topics tool from the cluster's jars."""
    script = directory / "kafka-topics"
    script.write_text("#!/bin/sh\n"
                      f'exec java -Xmx256m -Dlog4j2.configurationFile="{_QUIET_LOG4J}" -cp "{classpath}" '
                      'org.apache.kafka.tools.TopicCommand "$@"\n')
    script.chmod(0o755)
    return script


async def describe(bootstrap: str, topics: list[str]) -> dict[str, dict[str, Any]]:
    """Per topic: partitions, the replica count of each, and the configs that matter here."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        found: dict[str, dict[str, Any]] = {}
        for topic in await admin.describe_topics(topics):
            found[topic["topic"]] = {"partitions": len(topic["partitions"]),
                                     "replicas": {len(p["replicas"]) for p in topic["partitions"]}}
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t) for t in topics])
        for response in responses:
            for _code, _message, _kind, name, entries in response.resources:
                configs = {entry[0]: entry[1] for entry in entries}
                found[name]["config"] = {key: configs.get(key) for key in
                                         ("cleanup.policy", "min.insync.replicas", "retention.ms",
                                          "max.message.bytes", *CHANGELOG_CONFIG)}
        return found
    finally:
        await admin.close()


def test_the_deploy_job_makes_the_topics_a_worker_expects(whole_cluster: KafkaCluster, tmp_path: Path) -> None:
    names = unique_names()
    script, environment = topics_job()
    environment.update(KAFKA_TOPICS=str(kafka_topics_command(tmp_path, whole_cluster.classpath)),
                       KAFKA_BOOTSTRAP=whole_cluster.bootstrap, TOPIC_PREFIX=names.prefix,
                       TOPIC_PARTITIONS=str(PARTITIONS), TOPIC_REPLICATION=str(REPLICATION),
                       TOPIC_MIN_INSYNC=str(MIN_INSYNC))
    done = subprocess.run(["/bin/sh", "-ec", script], env={**os.environ, **environment}, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    listed = set(done.stdout.split())
    assert set(names.all) <= listed, done.stdout

    topics = describe_topics(whole_cluster.bootstrap, names)
    assert set(topics) == set(names.all)
    for topic, found in topics.items():
        assert found["partitions"] == PARTITIONS, topic
        assert found["replicas"] == {REPLICATION}, topic
        assert found["config"]["min.insync.replicas"] == str(MIN_INSYNC), topic
        wanted_policy = "compact" if topic in names.compacted else "delete"
        assert found["config"]["cleanup.policy"] == wanted_policy, topic
    # a dead letter carries its input whole: its topic takes what the worker's own creation gives it
    assert topics[names.deadletter]["config"]["max.message.bytes"] == str(DEADLETTER_MAX_MESSAGE_BYTES)
    print(f"\ndeploy topics job: {len(topics)} topics, {PARTITIONS} partitions each, replication {REPLICATION}, "
          f"min.insync.replicas={MIN_INSYNC}; compacted: {', '.join(sorted(names.compacted))}")

    # a worker on these topics, with the same partitions and replication, makes only its internal topic
    # and its tables' changelogs
    env = {"MONITOR_PARTITIONS": str(PARTITIONS), "MONITOR_TOPIC_REPLICATION": str(REPLICATION),
           "MONITOR_SESSION_TIMEOUT_SECONDS": "10", "MONITOR_HEARTBEAT_SECONDS": "1",
           "MONITOR_REBALANCE_TIMEOUT_SECONDS": "30"}
    with WorkerProcess(whole_cluster.bootstrap, names, tmp_path, env=env) as worker:
        worker.wait_ready(timeout=120)
        log = worker.log_path.read_text(errors="replace")
    created = [line for line in log.splitlines() if "monitor.stream.topics: created topics" in line]
    assert len(created) == 1, created
    changelogs = list(changelog_topics(worker.app_id))
    made = created[0].split("created topics ", 1)[1].split(" (", 1)[0].split(", ")
    assert sorted(made) == sorted([names.internal(worker.app_id), *changelogs]), created
    # its changelogs are compacted within minutes, so a takeover reads little
    for topic, found in run_apart(describe(whole_cluster.bootstrap, changelogs)).items():
        assert found["partitions"] == PARTITIONS and found["replicas"] == {REPLICATION}, topic
        assert found["config"]["cleanup.policy"] == "compact", topic
        assert {key: found["config"][key] for key in CHANGELOG_CONFIG} == CHANGELOG_CONFIG, topic


def describe_topics(bootstrap: str, names: TopicNames) -> dict[str, dict[str, Any]]:
    return run_apart(describe(bootstrap, list(names.all)))
