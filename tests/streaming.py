"""Running real workers against the real embedded broker in tests: processes, producing, reading.

Every test uses its own topic prefix and consumer group, so tests sharing the session's broker
never see each other's messages.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from monitor.embedded.broker import free_port
from monitor.kafka import KafkaTarget, client_options
from monitor.stream.topics import TopicNames

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_EVENTS = ROOT / "monitor" / "examples" / "events.jsonl"
EXAMPLE_REGISTRY = ROOT / "monitor" / "examples" / "registry.yaml"
KEY_FIELD = {"service-tickets": "ticket_id", "parts-stock": "depot_id", "outlet-status": "outlet_id",
             "registry": "exporter_id"}

Record = tuple[str, bytes | None, bytes]  # (full topic name, key, value)
# The stream tests produce histories of up to 20 days in slices, or shuffled, while the worker
# runs with a fixed "now" at their end (so it counts as caught up between two slices): a horizon
# longer than any of them lets every event re-judge what it should, and each test assert the
# exact result `evaluate` gives. What happens past the horizon is tested on its own
# (test_stream_backlog.py, test_live_judgement.py, test_bounded_state.py).
STREAM_HORIZON_HOURS = 60 * 24


# per bootstrap: how many records each of the worker's workarounds read itself (monitor_workaround_records_total),
# summed over the workers the session ran, read from each worker's /metrics before it stops (printed at the end)
WORKAROUNDS: dict[str, dict[str, float]] = {}
BROKER_KINDS: dict[str, str] = {}  # bootstrap -> which broker it is, for the summary
# on the embedded broker a group join waits half the session timeout, and a killed member is noticed after it:
# the tests' workers there run with a 3-s session (joins in 2 s), Apache Kafka's with the default 6 s (its minimum)
EMBEDDED_GROUP = {"MONITOR_SESSION_TIMEOUT_SECONDS": "3"}


def metric(worker: WorkerProcess, name: str) -> float:
    """The sum over labels of a counter or gauge on the worker's /metrics page."""
    with urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and not line.startswith("#") and (line[len(name)] in " {"))


def unique_names() -> TopicNames:
    return TopicNames.of(f"t{uuid.uuid4().hex[:10]}.")


class WorkerProcess:
    """A `monitor worker` in its own process (and process group), with its own log file."""

    def __init__(self, bootstrap: str, names: TopicNames, log_dir: Path, *, app_id: str | None = None,
                 env: dict[str, str] | None = None, name: str = "worker", options: Sequence[str] = (),
                 arguments: Sequence[str] = ()) -> None:
        self.bootstrap = bootstrap
        self.options = list(options)  # `monitor` options before the command, like -v
        self.arguments = list(arguments)  # the worker command's own options, like --no-history
        self.names = names
        self.web_port = free_port()
        self.name = name
        self.log_path = log_dir / f"{name}-{self.web_port}.log"
        self.app_id = app_id or f"{names.prefix}monitor"
        self.env = {**os.environ, "MONITOR_KAFKA_BOOTSTRAP": bootstrap, "MONITOR_TOPIC_PREFIX": names.prefix,
                    "MONITOR_APP_ID": self.app_id, "MONITOR_WEB_PORT": str(self.web_port),
                    "MONITOR_REGISTRY": str(EXAMPLE_REGISTRY), "MONITOR_DATA_DIR": str(log_dir / name),
                    "MONITOR_HORIZON_HOURS": str(STREAM_HORIZON_HOURS),
                    **(EMBEDDED_GROUP if BROKER_KINDS.get(bootstrap) == "embedded" else {}), **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen([sys.executable, "-m", "monitor", *self.options, "worker", *self.arguments],
                                        env=self.env,
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT)
        log.close()
        return self

    def health(self) -> dict[str, Any] | None:
        """The worker's /healthz answer; None if it does not answer within 5 s (as `metric` waits):
        under the whole suite's load its event loop has been seen to stall for over a second."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/healthz", timeout=5) as answer:
                return json.loads(answer.read())
        except OSError:
            return None

    def wait_ready(self, timeout: float = 60.0) -> float:
        """Seconds until the worker judges at least one partition; fails with its log's tail."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.tail()}")
            health = self.health()
            if health and health.get("partitions"):
                return time.monotonic() - started
            time.sleep(0.2)
        raise AssertionError(f"worker not ready after {timeout} s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def tally_workarounds(self) -> None:
        """Add this worker's workaround counts to WORKAROUNDS (nothing if its metrics cannot be read)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/metrics", timeout=2) as answer:
                text = answer.read().decode()
        except OSError:
            return
        tally = WORKAROUNDS.setdefault(self.bootstrap, {})
        for line in text.splitlines():
            if line.startswith("monitor_workaround_records_total{"):
                name = line.split('workaround="', 1)[1].split('"', 1)[0]
                tally[name] = tally.get(name, 0.0) + float(line.rsplit(" ", 1)[1])

    def kill(self) -> None:
        """kill -9: no clean shutdown, no last commit."""
        if self.process is not None and self.process.poll() is None:
            self.tally_workarounds()
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait: the clean shutdown an operator's Ctrl-C gives."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.tally_workarounds()
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        return self.process.returncode

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def records_of_lines(lines: Iterable[bytes], names: TopicNames) -> list[Record]:
    """Event-file lines as the records an exporter's system would produce (keys per CONTRACT.md);
    a line that is not a usable event goes to the tickets topic as it is."""
    records: list[Record] = []
    for raw in lines:
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError:
            record = None
        if isinstance(record, dict) and record.get("topic") in KEY_FIELD:
            topic = record.pop("topic")
            key = record.get(KEY_FIELD[topic])
            records.append((names.prefix + topic, str(key).encode() if key is not None else None,
                            orjson.dumps(record)))
        else:
            records.append((names.tickets, b"unparsed", raw))
    return records


async def produce(kafka: KafkaTarget, records: Sequence[Record]) -> None:
    """Produce `records` and wait for every acknowledgement. `kafka` is the bootstrap servers (plaintext),
    or aiokafka client options with security (as `monitor.kafka.kafka_client_options` gives)."""
    producer = AIOKafkaProducer(**client_options(kafka), linger_ms=5, max_request_size=4 * 1024 * 1024)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for topic, key, value in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def read_topic(kafka: KafkaTarget, topic: str, *, until: Callable[[list[Any]], bool] | None = None,
                     idle: float = 3.0, timeout: float = 120.0, raw: bool = False) -> list[Any]:
    """Every message of `topic` from the beginning: until `until(messages)` holds and no message came
    for `idle` seconds (or, with no `until`, just until `idle` seconds pass with nothing new).
    `kafka` as for `produce`."""
    consumer = AIOKafkaConsumer(topic, **client_options(kafka), group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    messages: list[Any] = []
    started = time.monotonic()
    quiet_since = time.monotonic()
    try:
        while time.monotonic() - started < timeout:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    messages.append(record if raw else orjson.loads(record.value))
                quiet_since = time.monotonic()
            if time.monotonic() - quiet_since >= idle and (until is None or until(messages)):
                break
    finally:
        await consumer.stop()
    return messages


def final_alerts(messages: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The latest message of each alert (transitions come in order per alert id)."""
    latest: dict[str, dict[str, Any]] = {}
    for message in messages:
        latest[message["alert_id"]] = message
    return latest


def evaluate_json(files: Sequence[Path], *extra: str) -> dict[str, Any]:
    """`monitor evaluate --format json`, run as a user would run it."""
    output = subprocess.run([sys.executable, "-m", "monitor", "evaluate", *map(str, files), "--registry",
                             str(EXAMPLE_REGISTRY), "--format", "json", *extra],
                            check=True, capture_output=True, cwd=ROOT).stdout
    return json.loads(output)
