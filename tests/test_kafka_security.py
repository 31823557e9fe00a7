"""The monitor on Apache Kafka with TLS and SCRAM-SHA-512, set up by the MONITOR_KAFKA_* variables alone.

One broker (Apache Kafka, KRaft, one node) whose only client listener is SASL_SSL: its certificate
for 127.0.0.1, signed by a test CA (`tests.services.tls`), and SCRAM-SHA-512 users written when its
storage is formatted: the broker's own (it is its own client on that listener), the monitor's, and
an exporter's system that produces the events. No authorizer: any user who authenticates may act.

- `monitor worker --no-history`, `monitor sink` and `monitor api` run as processes with
  MONITOR_KAFKA_SECURITY_PROTOCOL=SASL_SSL, _SASL_MECHANISM=SCRAM-SHA-512, _SASL_USERNAME,
  _SASL_PASSWORD and _SSL_CAFILE: the bundled example events go in, the alerts `monitor evaluate`
  finds come out on the alerts topic, the sink stores them and the API serves them, and /readyz
  reports the store and the broker ok. No log line holds the password.
- The broker refuses a client with no SASL credentials, one with a wrong password and a plaintext
  client: each fails to bootstrap and the broker's log says why; `monitor worker` and `monitor
  sink` given a wrong password exit 1 naming the cause, without a traceback or the password.

Waits have generous deadlines (a loaded machine); durations are never asserted.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from aiokafka.helpers import create_ssl_context

from monitor.embedded.broker import free_port
from tests.services.kafka import KafkaCluster, KafkaUnavailable
from tests.services.required import missing
from tests.services.tls import Pki, make_pki
from tests.streaming import (
    EXAMPLE_EVENTS,
    ROOT,
    WorkerProcess,
    evaluate_json,
    final_alerts,
    produce,
    read_topic,
    records_of_lines,
    unique_names,
)

pytestmark = pytest.mark.heavy  # starts brokers of its own, with TLS and SCRAM

MECHANISM = "SCRAM-SHA-512"
BROKER_USER, BROKER_PASSWORD = "broker", "broker-pw-3kQ"
MONITOR_USER, MONITOR_PASSWORD = "monitor", "monitor-pw-Z8t"
EXPORTER_USER, EXPORTER_PASSWORD = "exporter-system", "exporter-pw-4Ld"
WRONG_PASSWORD = "not-the-monitor-pw"  # noqa: S105 - a test's
NEVER = 90.0  # seconds: how long a wait may take before the test fails


@dataclass(frozen=True)
class SecureKafka:
    cluster: KafkaCluster
    pki: Pki

    @property
    def bootstrap(self) -> str:
        return self.cluster.bootstrap

    @property
    def log(self) -> Path:
        return self.cluster.brokers[0].log_path

    def monitor_env(self, password: str = MONITOR_PASSWORD) -> dict[str, str]:
        """The variables that connect the monitor's processes, and nothing else about Kafka security."""
        return {"MONITOR_KAFKA_BOOTSTRAP": self.bootstrap, "MONITOR_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "MONITOR_KAFKA_SASL_MECHANISM": MECHANISM, "MONITOR_KAFKA_SASL_USERNAME": MONITOR_USER,
                "MONITOR_KAFKA_SASL_PASSWORD": password, "MONITOR_KAFKA_SSL_CAFILE": str(self.pki.ca)}

    def client(self, **security: Any) -> dict[str, Any]:
        """aiokafka options of the exporter's system (TLS trusting the test CA, its SCRAM user); `security` wins."""
        return {"bootstrap_servers": self.bootstrap, "security_protocol": "SASL_SSL",
                "ssl_context": create_ssl_context(cafile=str(self.pki.ca)), "sasl_mechanism": MECHANISM,
                "sasl_plain_username": EXPORTER_USER, "sasl_plain_password": EXPORTER_PASSWORD, **security}


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    folder = tmp_path_factory.mktemp("secure-kafka")
    pki = make_pki(folder / "pki")
    broker_config = {
        "sasl.enabled.mechanisms": MECHANISM,
        "sasl.mechanism.inter.broker.protocol": MECHANISM,
        "listener.name.clients.scram-sha-512.sasl.jaas.config":
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{BROKER_USER}" password="{BROKER_PASSWORD}";',
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(pki.server_keystore),  # the key, then the certificate chain
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(pki.ca),  # the broker connects to itself, verifying its own certificate
    }
    users = ((MECHANISM, BROKER_USER, BROKER_PASSWORD), (MECHANISM, MONITOR_USER, MONITOR_PASSWORD),
             (MECHANISM, EXPORTER_USER, EXPORTER_PASSWORD))
    cluster = KafkaCluster(folder / "kafka", client_protocol="SASL_SSL", broker_config=broker_config,
                           scram_users=users)
    try:
        cluster.start()
    except KafkaUnavailable as exc:
        missing(f"Apache Kafka cannot run: {exc}")
    try:
        yield SecureKafka(cluster, pki)
    finally:
        cluster.remove()  # by its own pid


# ---- the monitor, authenticated ------------------------------------------------------------------


def _get(url: str, token: str | None = None) -> tuple[int, Any]:
    """Status and JSON body of a GET (an error status is an answer too)."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, orjson.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, orjson.loads(error.read() or b"null")


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "monitor", *command], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT)


def _stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM, then SIGKILL to its process group if it takes longer than 30 s; its exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    return process.returncode


def _until(what: str, condition: Any, logs: list[Path], timeout: float = NEVER) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    tails = "\n".join(f"--- {log.name}:\n" + "\n".join(log.read_text(errors="replace").splitlines()[-25:])
                      for log in logs if log.is_file())
    raise AssertionError(f"not within {timeout:.0f} s: {what}\n{tails}")


def test_a_worker_a_sink_and_the_api_run_on_tls_and_scram(secure_kafka: SecureKafka, tmp_path: Path) -> None:
    expected = evaluate_json([EXAMPLE_EVENTS])
    wanted = {a["alert_id"]: a["status"] for a in expected["alerts"]}
    names = unique_names()
    url = f"sqlite+aiosqlite:///{tmp_path / 'history.sqlite3'}"
    env = {**secure_kafka.monitor_env(), "MONITOR_DATABASE_URL": url, "MONITOR_AS_OF": expected["as_of"],
           "MONITOR_API_TOKENS": str(tmp_path / "api-tokens.json"),
           "MONITOR_READY_TIMEOUT_SECONDS": "10"}  # /readyz's own wait for the store and the broker, on a busy machine
    worker = WorkerProcess(secure_kafka.bootstrap, names, tmp_path, env=env, arguments=["--no-history"])
    token = subprocess.run([sys.executable, "-m", "monitor", "token", "create", "--role", "regulator"],
                           env=worker.env, check=True, capture_output=True, text=True, cwd=ROOT).stdout.strip()
    sink_log, api_log = tmp_path / "sink.log", tmp_path / "api.log"
    api_url = f"http://127.0.0.1:{free_port()}"
    logs = [worker.log_path, sink_log, api_log]
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        worker.start()
        processes["sink"] = _start(["sink"], worker.env, sink_log)
        processes["api"] = _start(["api", "--port", api_url.rsplit(":", 1)[1]], worker.env, api_log)
        worker.wait_ready(timeout=NEVER)
        # the sink is storing once it has opened the store and its consumer has joined the broker
        _until("the sink connects", lambda: "history: storing" in sink_log.read_text(errors="replace"), logs)
        assert processes["sink"].poll() is None, sink_log.read_text()

        exporter = secure_kafka.client()
        asyncio.run(produce(exporter, records_of_lines(EXAMPLE_EVENTS.read_bytes().splitlines(), names)))

        def settled(messages: list[dict[str, Any]]) -> bool:
            return {k: m["status"] for k, m in final_alerts(messages).items() if m["status"] != "retracted"} == wanted

        published = asyncio.run(read_topic(exporter, names.alerts, until=settled, idle=2.0, timeout=NEVER))
        assert settled(published), worker.tail()
        latest = {alert_id: m["status"] for alert_id, m in final_alerts(published).items()}

        served: dict[str, Any] = {}

        def api_serves_every_alert() -> bool:
            assert processes["api"].poll() is None, api_log.read_text()
            try:
                status, page = _get(f"{api_url}/api/v1/alerts?limit=1000", token)
            except OSError:  # not listening yet
                return False
            served.update(status=status, page=page)
            return status == 200 and {a["alert_id"]: a["status"] for a in page["items"]} == latest

        _until("the API serves every alert the worker published", api_serves_every_alert, logs)
        assert served["page"]["next"] is None

        status, readiness = _get(f"{api_url}/readyz")
        assert (status, readiness) == (200, {"status": "ready", "checks": {"store": "ok", "broker": "ok"}})
    finally:
        codes: dict[str, int | None] = {name: _stop(process) for name, process in processes.items()}
        codes["worker"] = worker.stop()
    assert codes == {"sink": 0, "api": 0, "worker": 0}, "\n".join(log.read_text(errors="replace")[-3000:]
                                                                    for log in logs)
    for log in logs:
        said = log.read_text(errors="replace")
        assert MONITOR_PASSWORD not in said, log.name
        assert "Traceback" not in said, f"{log.name}:\n{said[-3000:]}"
    print(f"\n{len(published)} alert messages over SASL_SSL, {len(latest)} alerts stored and served")


# ---- refusals --------------------------------------------------------------------------------------


async def _refused(options: dict[str, Any]) -> KafkaConnectionError:
    """What a producer with these options gets when it starts (it must not connect)."""
    producer = AIOKafkaProducer(**options, request_timeout_ms=30_000)
    try:
        await asyncio.wait_for(producer.start(), NEVER)
    except KafkaConnectionError as exc:
        return exc
    finally:
        await producer.stop()
    raise AssertionError(f"a client with {sorted(options)} connected")


def _broker_says(secure_kafka: SecureKafka, since: int, reason: str) -> str:
    """The line the broker logged after offset `since` that gives `reason` (waiting for it)."""
    found: list[str] = []

    def logged() -> bool:
        with secure_kafka.log.open("rb") as log:
            log.seek(since)
            found[:] = [line for line in log.read().decode(errors="replace").splitlines() if reason in line]
        return bool(found)

    _until(f"the broker logs {reason!r}", logged, [secure_kafka.log], timeout=30)
    return found[0]


def test_clients_without_the_right_credentials_are_refused(secure_kafka: SecureKafka,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    tls_only = {"bootstrap_servers": secure_kafka.bootstrap, "security_protocol": "SSL",
                "ssl_context": create_ssl_context(cafile=str(secure_kafka.pki.ca))}
    cases = {
        # TLS to the broker's certificate, but no SASL: the broker wants authentication before any request
        "no credentials": (tls_only, "Unexpected Kafka request of type METADATA during SASL handshake"),
        "wrong password": (secure_kafka.client(sasl_plain_username=MONITOR_USER, sasl_plain_password=WRONG_PASSWORD),
                           "invalid credentials with SASL mechanism SCRAM-SHA-512"),
        "plaintext": ({"bootstrap_servers": secure_kafka.bootstrap, "security_protocol": "PLAINTEXT"},
                      "(SSL handshake failed)"),
    }
    broker_lines: dict[str, str] = {}
    for case, (options, reason) in cases.items():
        since = secure_kafka.log.stat().st_size
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="aiokafka"):
            error = asyncio.run(_refused(options))
        assert "Unable to bootstrap from" in str(error), case
        broker_lines[case] = _broker_says(secure_kafka, since, reason)
        if case == "wrong password":
            assert "Failed authentication with /127.0.0.1" in broker_lines[case]
            assert "SaslAuthenticationFailed" in caplog.text and "invalid credentials" in caplog.text, caplog.text
        else:
            assert "closed" in caplog.text, (case, caplog.text)
    print("\n" + "\n".join(f"{case}: broker: {line.split('] ', 1)[-1]}" for case, line in broker_lines.items()))

    # the same broker, just then, lets the exporter's system in
    asyncio.run(produce(secure_kafka.client(), []))


def test_the_monitor_given_a_wrong_password_exits_naming_the_cause(secure_kafka: SecureKafka,
                                                                   tmp_path: Path) -> None:
    names = unique_names()
    env = {name: value for name, value in os.environ.items() if not name.startswith("MONITOR_")}
    env.update(secure_kafka.monitor_env(password=WRONG_PASSWORD), MONITOR_TOPIC_PREFIX=names.prefix,
               MONITOR_DATA_DIR=str(tmp_path), MONITOR_WEB_PORT=str(free_port()))
    runs = {command: subprocess.Popen([sys.executable, "-m", "monitor", command], env=env, cwd=tmp_path,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for command in ("worker", "sink")}
    for command, process in runs.items():
        try:
            out, err = process.communicate(timeout=NEVER)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        said = out + err
        assert process.returncode == 1, (command, said)
        assert "SaslAuthenticationFailed" in err and "invalid credentials with SASL mechanism SCRAM-SHA-512" in err, (
            command, said)
        assert f"Error: could not reach Kafka at {secure_kafka.bootstrap}" in err, (command, said)
        assert "Traceback" not in said, (command, said)
        assert WRONG_PASSWORD not in said, command
