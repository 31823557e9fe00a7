"""Fixtures shared by the test files: the real services a session starts for itself.

- `embedded_bootstrap`: the embedded broker (Tansu), one per session.
- `apache_kafka`: Apache Kafka 4.x in KRaft mode, one node (broker and controller), one per session.
- `kafka_bootstrap`: the stream suite's broker, parametrised: each test that takes it runs on
  the embedded broker and on Apache Kafka (test ids `[embedded]` and `[kafka]`).
- `postgres_admin_dsn`: a PostgreSQL server (MONITOR_TEST_POSTGRES, or one started here).

Every test that needs none of them and is not marked `heavy` is marked `unit` (`pytest -m unit`,
the fast subset). Tests share a broker, so each uses its own topic names. A service that cannot run here fails
the tests that need it under CI=true and skips them elsewhere, with what to install.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from monitor.embedded.broker import BrokerUnavailable, EmbeddedBroker, free_port, resolve_binary
from tests.services.kafka import KafkaCluster, KafkaUnavailable
from tests.services.postgres import OwnPostgres, PostgresUnavailable
from tests.services.required import missing
from tests.streaming import BROKER_KINDS, WORKAROUNDS

BROKERS = ("embedded", "kafka")


@pytest.fixture(scope="session")
def embedded_bootstrap() -> Iterator[str]:
    """`host:port` of a Tansu broker on a free port, empty at the start of the session."""
    try:
        resolve_binary()
    except BrokerUnavailable as exc:
        missing(f"the embedded broker cannot run: {exc}")
    broker = EmbeddedBroker(port=free_port())
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()  # by its own pid


@pytest.fixture(scope="session")
def apache_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """One Apache Kafka node (broker and controller) on free loopback ports, for the session."""
    cluster = KafkaCluster(tmp_path_factory.mktemp("apache-kafka"))
    try:
        cluster.start()
    except KafkaUnavailable as exc:
        missing(f"Apache Kafka cannot run: {exc}")
    try:
        yield cluster
    finally:
        cluster.remove()  # each node by its own pid


@pytest.fixture(scope="session", params=BROKERS)
def broker_kind(request: pytest.FixtureRequest) -> str:
    """Which broker a stream test runs on: "embedded" (Tansu) or "kafka" (Apache Kafka)."""
    return str(request.param)


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest, broker_kind: str) -> str:
    """`host:port` of the broker this run of the test is on (see `broker_kind`)."""
    if broker_kind == "embedded":
        bootstrap = str(request.getfixturevalue("embedded_bootstrap"))
    else:
        cluster: KafkaCluster = request.getfixturevalue("apache_kafka")
        bootstrap = cluster.bootstrap
    BROKER_KINDS[bootstrap] = broker_kind
    return bootstrap


# a test that takes one of these (directly or through another fixture) talks to a real service
SERVICE_FIXTURES = frozenset({"embedded_bootstrap", "apache_kafka", "broker_kind", "kafka_bootstrap",
                              "postgres_admin_dsn", "kafka_cluster", "whole_cluster"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `unit` every test that needs no real service (no fixture of one, no PostgreSQL
    parameter) and is not `heavy` (a module or test starting processes of its own, or checking
    properties for seconds, says so): `pytest -m unit` is the fast subset."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        on_postgres = callspec is not None and any("postgres" in str(value) for value in callspec.params.values())
        if not fixtures & SERVICE_FIXTURES and not on_postgres and item.get_closest_marker("heavy") is None:
            item.add_marker(pytest.mark.unit)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test marked `requires(what, available=False)` (tests.services.required.needs, under CI=true) fails."""
    for mark in item.iter_markers("requires"):
        if not mark.kwargs.get("available", True):
            pytest.fail(f"CI=true and {mark.args[0]}", pytrace=False)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """How often each of the worker's workarounds read records itself, per broker, over the session's workers."""
    for bootstrap, tally in sorted(WORKAROUNDS.items(), key=lambda item: BROKER_KINDS.get(item[0], item[0])):
        kind = BROKER_KINDS.get(bootstrap, bootstrap)
        counts = ", ".join(f"{name} {count:.0f}" for name, count in sorted(tally.items()))
        terminalreporter.write_line(f"worker workarounds on {kind} ({bootstrap}): records read directly: {counts}")


@pytest.fixture(scope="session")
def postgres_admin_dsn() -> Iterator[str]:
    """An asyncpg DSN of a PostgreSQL database to connect to for creating others.

    MONITOR_TEST_POSTGRES when set; otherwise a server of the session's own (Debian's binaries,
    a temporary data directory, a free loopback port), stopped at the end by its own pid.
    """
    named = os.environ.get("MONITOR_TEST_POSTGRES")
    if named:
        yield named
        return
    try:
        server = OwnPostgres()
    except PostgresUnavailable as exc:
        missing(str(exc))
    server.init().start()
    try:
        yield server.dsn
    finally:
        server.remove()
