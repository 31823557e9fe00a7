"""Kafka security and topic settings: from MONITOR_* variables into every client the monitor makes.

The TLS material (a CA, a broker certificate for localhost and a client certificate) comes from
`tests.services.tls`, and the contexts are tried in real TLS handshakes over loopback. That the
default (PLAINTEXT) still runs a worker, a sink and the simulator against the embedded broker is
what the stream, history and simulate tests show; `tests/test_kafka_security.py` runs them against
Apache Kafka with TLS and SCRAM.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
from pathlib import Path

import faust
import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from pydantic import ValidationError

from monitor.contracts.policy import DEFAULT_POLICY
from monitor.history.sink import HistorySink
from monitor.kafka import faust_broker_options, kafka_client_options, kafka_security_options, kafka_ssl_context
from monitor.obligations.policy import PolicyBook
from monitor.settings import MonitorSettings
from monitor.stream.settings import WorkerSettings
from tests.services.tls import KEY_PASSWORD, Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(autouse=True)
def _no_ambient_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only the variables a test sets: none from the environment, no .env file."""
    for name in list(os.environ):
        if name.startswith("MONITOR_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def _settings(monkeypatch: pytest.MonkeyPatch, **variables: str | Path) -> MonitorSettings:
    for name, value in variables.items():
        monkeypatch.setenv(f"MONITOR_{name.upper()}", str(value))
    return MonitorSettings()


def _refusal(monkeypatch: pytest.MonkeyPatch, **variables: str | Path) -> dict[str, str]:
    """The refusal of these variables: field name -> message."""
    with pytest.raises(ValidationError) as caught:
        _settings(monkeypatch, **variables)
    return {".".join(str(p) for p in e["loc"]): e["msg"] for e in caught.value.errors()}


# ---- the mapping -------------------------------------------------------------------------------


def test_the_default_is_plaintext_to_the_bootstrap_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(monkeypatch, kafka_bootstrap="k1:9092, k2:9092")
    assert kafka_client_options(settings) == {"bootstrap_servers": "k1:9092, k2:9092", "security_protocol": "PLAINTEXT"}
    assert faust_broker_options(settings) == {"broker": ["kafka://k1:9092", "kafka://k2:9092"],
                                              "broker_credentials": None}
    assert settings.topic_replication == 1
    assert kafka_ssl_context(settings) is None


def test_every_sasl_ssl_setting_lands_in_the_client_options(monkeypatch: pytest.MonkeyPatch, pki: Pki) -> None:
    settings = _settings(monkeypatch, kafka_bootstrap="b-1.example:9096", kafka_security_protocol="SASL_SSL",
                         kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username="monitor",
                         kafka_sasl_password="s3cret", kafka_ssl_cafile=pki.ca)  # noqa: S106 - a test's
    options = kafka_client_options(settings)
    context = options.pop("ssl_context")
    assert options == {"bootstrap_servers": "b-1.example:9096", "security_protocol": "SASL_SSL",
                       "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "monitor",
                       "sasl_plain_password": "s3cret"}
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    # the CA file is what the context trusts
    assert [dict(item[0] for item in ca["subject"]) for ca in context.get_ca_certs()] == [
        {"commonName": "monitor test CA"}]
    assert "s3cret" not in repr(settings)  # the password is a SecretStr


def test_faust_gets_the_same_connection_as_aiokafka(monkeypatch: pytest.MonkeyPatch, pki: Pki) -> None:
    for protocol in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
        variables: dict[str, str | Path] = {"kafka_security_protocol": protocol}
        if protocol.startswith("SASL"):
            variables.update(kafka_sasl_mechanism="SCRAM-SHA-256", kafka_sasl_username="u",
                             kafka_sasl_password="p")  # noqa: S106 - a test's
        if protocol.endswith("SSL"):
            variables.update(kafka_ssl_cafile=pki.ca)
        for name in ("kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password", "kafka_ssl_cafile"):
            monkeypatch.delenv(f"MONITOR_{name.upper()}", raising=False)
        settings = _settings(monkeypatch, **variables)
        ours = kafka_security_options(settings)
        credentials = faust_broker_options(settings)["broker_credentials"]
        theirs = dict(credentials_to_aiokafka_auth(credentials))  # what Faust hands its aiokafka clients
        assert {k: v for k, v in theirs.items() if k != "ssl_context"} == {
            k: v for k, v in ours.items() if k != "ssl_context"}, protocol
        assert isinstance(theirs.get("ssl_context"), ssl.SSLContext) == protocol.endswith("SSL"), protocol
        expected = {"PLAINTEXT": type(None), "SSL": faust.SSLCredentials}.get(protocol, faust.SASLCredentials)
        assert isinstance(credentials, expected), protocol


def test_the_worker_app_and_the_sink_use_the_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from monitor.stream.worker import StreamWorker

    for name, value in {"kafka_bootstrap": "k1:9093,k2:9093", "kafka_security_protocol": "SASL_PLAINTEXT",
                        "kafka_sasl_mechanism": "SCRAM-SHA-256", "kafka_sasl_username": "monitor",
                        "kafka_sasl_password": "pw", "topic_replication": "3", "data_dir": str(tmp_path)}.items():
        monkeypatch.setenv(f"MONITOR_{name.upper()}", value)
    settings = WorkerSettings()
    policy = PolicyBook(DEFAULT_POLICY)
    app = StreamWorker(settings, {}, policy).app
    assert [str(url) for url in app.conf.broker] == ["kafka://k1:9093", "kafka://k2:9093"]
    assert app.conf.topic_replication_factor == 3
    assert dict(credentials_to_aiokafka_auth(app.conf.broker_credentials)) == {
        "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-256", "sasl_plain_username": "monitor",
        "sasl_plain_password": "pw", "ssl_context": None}
    sink = HistorySink.from_settings(settings, policy)
    assert sink.bootstrap == "k1:9093,k2:9093"
    assert {k: sink.consumer_options[k] for k in kafka_security_options(settings)} == kafka_security_options(settings)


# ---- TLS, for real ---------------------------------------------------------------------------------


async def _handshake(client: ssl.SSLContext, pki: Pki, *, require_client_certificate: bool) -> str | None:
    """Connect to a TLS server for `localhost` (certificate signed by the test CA) with `client`;
    the common name of the certificate the client presented, if any."""
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(pki.server_cert, pki.server_key)
    server.load_verify_locations(pki.ca)
    server.verify_mode = ssl.CERT_REQUIRED if require_client_certificate else ssl.CERT_NONE
    seen: list[str | None] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peercert")
        seen.append(dict(item[0] for item in peer["subject"])["commonName"] if peer else None)
        writer.write(b"ok")
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server)
    port = listener.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=client, server_hostname="localhost"), 10)
        assert await asyncio.wait_for(reader.read(2), 10) == b"ok"
        writer.close()
    finally:
        listener.close()
    return seen[0]


async def test_the_ssl_context_trusts_the_ca_file_and_only_it(monkeypatch: pytest.MonkeyPatch, pki: Pki) -> None:
    trusting = kafka_ssl_context(_settings(monkeypatch, kafka_security_protocol="SSL", kafka_ssl_cafile=pki.ca))
    assert trusting is not None
    assert await _handshake(trusting, pki, require_client_certificate=False) is None
    stranger = kafka_ssl_context(_settings(monkeypatch, kafka_ssl_cafile=pki.other_ca))
    assert stranger is not None
    with pytest.raises(ssl.SSLCertVerificationError):
        await _handshake(stranger, pki, require_client_certificate=False)


async def test_mutual_tls_presents_the_client_certificate(monkeypatch: pytest.MonkeyPatch, pki: Pki) -> None:
    encrypted = _settings(monkeypatch, kafka_security_protocol="SASL_SSL", kafka_sasl_username="u",
                          kafka_sasl_password="p",  # noqa: S106 - a test's
                          kafka_ssl_cafile=pki.ca, kafka_ssl_certfile=pki.client_cert,
                          kafka_ssl_keyfile=pki.client_key, kafka_ssl_key_password=KEY_PASSWORD)
    context = kafka_security_options(encrypted)["ssl_context"]
    assert await _handshake(context, pki, require_client_certificate=True) == "monitor-client"
    monkeypatch.delenv("MONITOR_KAFKA_SSL_KEY_PASSWORD")
    plain = _settings(monkeypatch, kafka_ssl_keyfile=pki.client_plain_key)
    credentials = faust_broker_options(plain)["broker_credentials"]
    assert await _handshake(credentials.ssl_context, pki, require_client_certificate=True) == "monitor-client"


# ---- refusals ------------------------------------------------------------------------------------


def test_sasl_without_credentials_is_refused_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _refusal(monkeypatch, kafka_security_protocol="SASL_SSL") == {
        "kafka_sasl_username": "Value error, is required when MONITOR_KAFKA_SECURITY_PROTOCOL is SASL_SSL",
        "kafka_sasl_password": "Value error, is required when MONITOR_KAFKA_SECURITY_PROTOCOL is SASL_SSL"}
    assert list(_refusal(monkeypatch, kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="u")) == [
        "kafka_sasl_password"]


def test_settings_a_protocol_would_ignore_are_refused(monkeypatch: pytest.MonkeyPatch, pki: Pki) -> None:
    refused = _refusal(monkeypatch, kafka_sasl_username="u", kafka_ssl_cafile=pki.ca)
    assert set(refused) == {"kafka_sasl_username", "kafka_ssl_cafile"}
    assert "PLAINTEXT, which sends no SASL credentials" in refused["kafka_sasl_username"]
    assert "PLAINTEXT, which does not use TLS" in refused["kafka_ssl_cafile"]


def test_bad_tls_files_are_refused(monkeypatch: pytest.MonkeyPatch, pki: Pki, tmp_path: Path) -> None:
    not_pem = tmp_path / "ca.txt"
    not_pem.write_text("not a certificate\n")
    assert "is not a PEM file of CA certificates" in _refusal(
        monkeypatch, kafka_security_protocol="SSL", kafka_ssl_cafile=not_pem)["kafka_ssl_cafile"]
    monkeypatch.delenv("MONITOR_KAFKA_SSL_CAFILE")
    assert "Path does not point to a file" in _refusal(
        monkeypatch, kafka_ssl_cafile=tmp_path / "missing.pem")["kafka_ssl_cafile"]
    monkeypatch.delenv("MONITOR_KAFKA_SSL_CAFILE")
    assert _refusal(monkeypatch, kafka_ssl_keyfile=pki.client_plain_key) == {
        "kafka_ssl_certfile": "Value error, is required when MONITOR_KAFKA_SSL_KEYFILE is set"}
    wrong_password = _refusal(monkeypatch, kafka_ssl_certfile=pki.client_cert, kafka_ssl_keyfile=pki.client_key,
                              kafka_ssl_key_password="wrong")  # noqa: S106 - a test's
    assert list(wrong_password) == ["kafka_ssl_certfile"]
    assert "cannot be loaded with MONITOR_KAFKA_SSL_KEYFILE" in wrong_password["kafka_ssl_certfile"]


@pytest.mark.heavy  # runs the monitor's commands in processes of their own
def test_a_command_refuses_sasl_without_a_user_at_start_and_never_prints_the_password(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("MONITOR_")}
    env.update({"MONITOR_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "MONITOR_KAFKA_SASL_PASSWORD": "do-not-print-me",
                "MONITOR_KAFKA_BOOTSTRAP": "127.0.0.1:9", "MONITOR_DATA_DIR": str(tmp_path)})
    for command in (["worker"], ["sink"], ["simulate", "--limit", "1"]):
        result = subprocess.run([sys.executable, "-m", "monitor", *command], env=env, cwd=tmp_path,
                                capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 2, (command, result.stderr)
        assert "MONITOR_KAFKA_SASL_USERNAME is required when MONITOR_KAFKA_SECURITY_PROTOCOL is SASL_SSL" in (
            result.stderr), command
        assert "do-not-print-me" not in result.stderr + result.stdout, command
