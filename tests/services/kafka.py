"""Apache Kafka in KRaft mode, run from its Maven Central jars: one node, or a cluster of several.

`pom.xml` beside this file pins the version; Maven resolves the jars into the local Maven
repository once, and `kafka_classpath()` keeps the class path it prints in a cache file named
after the pom's content (so a changed pom resolves again). Each node is `kafka.Kafka` on the
machine's JRE with a configuration written here: free loopback ports, a data directory
formatted first (`kafka.tools.StorageTool format`), a log4j2 file of its own. Nodes run in their
own sessions and are stopped, killed, frozen and thawed by their own pids.

A single node is broker and controller at once; a cluster has `controllers` controller-only
nodes (ids 1, 2, …) and `brokers` broker-only nodes (ids 101, 102, …), a static quorum.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from monitor.embedded.broker import free_port

POM = Path(__file__).with_name("pom.xml")
INSTALL_HINT = "apt-get install maven default-jre-headless (Apache Kafka's jars then come from Maven Central)"
HEAP = "-Xms128m -Xmx512m"


class KafkaUnavailable(RuntimeError):
    """Apache Kafka cannot be run here; the message says what is missing and how to get it."""


def _cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "aftersales-monitor"


def kafka_classpath(timeout: float = 900.0) -> str:
    """The class path of Apache Kafka's broker and tools, resolved by Maven from `pom.xml`.

    Raises KafkaUnavailable when java or mvn is missing or Maven cannot resolve the jars.
    """
    if shutil.which("java") is None or shutil.which("mvn") is None:
        raise KafkaUnavailable(f"java and mvn are needed to run Apache Kafka: {INSTALL_HINT}")
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:16]
    cached = _cache_dir() / f"kafka-classpath-{digest}.txt"
    if cached.is_file():
        classpath = cached.read_text().strip()
        if classpath and all(Path(jar).is_file() for jar in classpath.split(os.pathsep)):
            return classpath
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(f".{os.getpid()}.part")
    done = subprocess.run(["mvn", "-q", "-B", "-f", str(POM), "dependency:build-classpath",
                           f"-Dmdep.outputFile={partial}", "-Dmdep.includeScope=runtime"],
                          capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0 or not partial.is_file():
        said = (done.stdout + done.stderr).strip().splitlines()[-15:]
        raise KafkaUnavailable("Maven could not resolve Apache Kafka's jars from " + str(POM) + ":\n"
                               + "\n".join(said))
    partial.replace(cached)
    return cached.read_text().strip()


def kafka_version() -> str:
    """The Apache Kafka version the pom pins."""
    text = POM.read_text()
    return text.split("<kafka.version>", 1)[1].split("</kafka.version>", 1)[0].strip()


def run_tool(classpath: str, main_class: str, *args: str, timeout: float = 120.0,
             check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one of Kafka's command-line tools (a main class of its jars) and return what it printed."""
    done = subprocess.run(["java", "-Xmx256m", "-cp", classpath, "-Dlog4j2.level=WARN",
                           f"-Dlog4j2.configurationFile={_QUIET_LOG4J}", main_class, *args],
                          capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"{main_class} {' '.join(args)} failed ({done.returncode}):\n"
                             f"{done.stdout}\n{done.stderr}")
    return done


_QUIET_LOG4J = Path(__file__).with_name("log4j2-tools.yaml")

_NODE_LOG4J = """\
Configuration:
  Appenders:
    File:
      name: FILE
      fileName: "{log}"
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: FILE
    Logger:
      - name: kafka.request.logger
        level: WARN
      - name: org.apache.kafka.clients
        level: WARN
      - name: kafka.log.LogCleaner
        level: WARN
"""


@dataclass
class KafkaNode:
    """One Kafka process: a broker, a controller, or both."""

    node_id: int
    roles: tuple[str, ...]
    directory: Path
    controller_port: int | None = None  # listens for the quorum (controllers)
    client_port: int | None = None  # listens for clients and other brokers (brokers)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log_start: int = field(default=0, repr=False)  # where this start's lines begin in the log

    @property
    def config_path(self) -> Path:
        return self.directory / "server.properties"

    @property
    def log_path(self) -> Path:
        return self.directory / "server.log"

    @property
    def is_broker(self) -> bool:
        return "broker" in self.roles

    @property
    def is_controller(self) -> bool:
        return "controller" in self.roles

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, classpath: str) -> None:
        log4j = self.directory / "log4j2.yaml"
        log4j.write_text(_NODE_LOG4J.format(log=self.log_path))
        self._log_start = self.log_path.stat().st_size if self.log_path.is_file() else 0
        out = (self.directory / "stdout.log").open("ab")
        self.process = subprocess.Popen(
            ["java", *HEAP.split(), "-XX:+UseG1GC", "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={log4j}",
             "-cp", classpath, "kafka.Kafka", str(self.config_path)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.directory)
        out.close()

    def wait_started(self, timeout: float = 90.0) -> None:
        """Until the node logs that it has started and its ports accept connections."""
        deadline = time.monotonic() + timeout
        ports = [p for p in (self.client_port, self.controller_port) if p is not None]
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise KafkaUnavailable(f"Kafka node {self.node_id} exited with {self.process.returncode}:\n"
                                       + self.tail())
            started = "Kafka Server started" in self._log_since_start()
            if started and all(_accepts(port) for port in ports):
                return
            time.sleep(0.2)
        raise KafkaUnavailable(f"Kafka node {self.node_id} did not start in {timeout:.0f} s:\n{self.tail()}")

    def _log_since_start(self) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_start)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def kill(self) -> None:
        """kill -9: no shutdown at all."""
        if self.running:
            assert self.process is not None
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def freeze(self) -> None:
        """SIGSTOP: the process holds its sockets but answers nothing (a long GC pause, a hung host)."""
        assert self.process is not None and self.running
        os.killpg(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGCONT)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (a controlled shutdown), then SIGKILL if it takes longer than `timeout`."""
        if not self.running:
            return
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGCONT)  # a frozen node cannot act on SIGTERM
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self, lines: int = 25) -> str:
        said = []
        for path in (self.directory / "stdout.log", self.log_path):
            with contextlib.suppress(OSError):
                said.extend(path.read_text(errors="replace").splitlines()[-lines:])
        return "\n".join(said[-lines:]) or "(no log)"


def _accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


class KafkaCluster:
    """Apache Kafka on loopback: `brokers` brokers and `controllers` controllers (one node: both roles).

    `client_protocol` is the security protocol of the brokers' listener (PLAINTEXT, SASL_SSL, …);
    `broker_config` is added to every broker's configuration (TLS stores, SASL settings);
    `scram_users` are (mechanism, user, password) credentials written when storage is formatted.
    """

    def __init__(self, directory: Path, *, brokers: int = 1, controllers: int = 1, client_protocol: str = "PLAINTEXT",
                 broker_config: Mapping[str, str] | None = None,
                 scram_users: tuple[tuple[str, str, str], ...] = ()) -> None:
        self.directory = directory
        self.client_protocol = client_protocol
        self.broker_config = dict(broker_config or {})
        self.scram_users = scram_users
        self.cluster_id = _base64_uuid()
        self.nodes: list[KafkaNode] = []
        if brokers == 1 and controllers == 1:
            self.nodes.append(KafkaNode(1, ("broker", "controller"), directory / "node-1",
                                        controller_port=free_port(), client_port=free_port()))
        else:
            self.nodes += [KafkaNode(n, ("controller",), directory / f"controller-{n}", controller_port=free_port())
                           for n in range(1, controllers + 1)]
            self.nodes += [KafkaNode(100 + n, ("broker",), directory / f"broker-{100 + n}", client_port=free_port())
                           for n in range(1, brokers + 1)]
        self.classpath = ""

    # ---- what it is ----------------------------------------------------------------------------

    @property
    def brokers(self) -> list[KafkaNode]:
        return [node for node in self.nodes if node.is_broker]

    @property
    def controllers(self) -> list[KafkaNode]:
        return [node for node in self.nodes if node.is_controller]

    @property
    def bootstrap(self) -> str:
        """host:port of every broker, comma-separated."""
        return ",".join(f"127.0.0.1:{node.client_port}" for node in self.brokers)

    def node(self, node_id: int) -> KafkaNode:
        return next(node for node in self.nodes if node.node_id == node_id)

    def broker_at(self, port: int) -> KafkaNode:
        return next(node for node in self.brokers if node.client_port == port)

    # ---- life -----------------------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> KafkaCluster:
        self.classpath = kafka_classpath()
        voters = ",".join(f"{node.node_id}@127.0.0.1:{node.controller_port}" for node in self.controllers)
        replicas = min(3, len(self.brokers))
        for node in self.nodes:
            node.directory.mkdir(parents=True, exist_ok=True)
            node.config_path.write_text(self._config(node, voters, replicas))
            scram = [f"{mechanism}=[name={user},password={password}]" for mechanism, user, password in self.scram_users]
            run_tool(self.classpath, "kafka.tools.StorageTool", "format", f"--cluster-id={self.cluster_id}",
                     "-c", str(node.config_path), *[arg for s in scram for arg in ("--add-scram", s)])
        try:
            for node in self.nodes:
                node.start(self.classpath)
            for node in self.nodes:
                node.wait_started(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for node in reversed(self.nodes):  # brokers first, then the quorum they report to
            node.stop()

    def remove(self) -> None:
        """Kill every node and delete the cluster's files: nothing of it is kept, so nothing is waited
        for (a controlled shutdown of a node whose quorum is gone waits out its timeout)."""
        for node in self.nodes:
            with contextlib.suppress(ProcessLookupError):
                node.kill()  # a frozen node too: SIGKILL needs no SIGCONT
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> KafkaCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def _config(self, node: KafkaNode, voters: str, replicas: int) -> str:
        lines = {
            "process.roles": ",".join(node.roles),
            "node.id": str(node.node_id),
            "controller.quorum.voters": voters,
            "controller.listener.names": "CONTROLLER",
            "log.dirs": str(node.directory / "data"),
            "num.partitions": "1",
            "group.initial.rebalance.delay.ms": "0",
            # as a production cluster is run: topics are made on purpose (deploy/, the worker), not by a
            # producer's first send
            "auto.create.topics.enable": "false",
        }
        listeners, protocols = [], ["CONTROLLER:PLAINTEXT"]
        if node.is_controller:
            listeners.append(f"CONTROLLER://127.0.0.1:{node.controller_port}")
        if node.is_broker:
            listeners.append(f"CLIENTS://127.0.0.1:{node.client_port}")
            protocols.append(f"CLIENTS:{self.client_protocol}")
            lines.update({
                "advertised.listeners": f"CLIENTS://127.0.0.1:{node.client_port}",
                "inter.broker.listener.name": "CLIENTS",
                "offsets.topic.replication.factor": str(replicas),
                "transaction.state.log.replication.factor": str(replicas),
                "transaction.state.log.min.isr": str(min(2, replicas)),
                "default.replication.factor": str(replicas),
                **self.broker_config,
            })
        lines["listeners"] = ",".join(listeners)
        lines["listener.security.protocol.map"] = ",".join(protocols)
        return "".join(f"{key}={value}\n" for key, value in lines.items())


def _base64_uuid() -> str:
    """A cluster id as Kafka's `random-uuid` makes one: 22 characters of URL-safe base64, which may
    start with "-" (so it is passed as `--cluster-id=<id>`, never as an argument of its own)."""
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


@contextlib.contextmanager
def running_kafka(directory: Path, **options: object) -> Iterator[KafkaCluster]:
    """A started cluster (KafkaCluster's options), removed with its data afterwards."""
    cluster = KafkaCluster(directory, **options)  # type: ignore[arg-type]
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.remove()
