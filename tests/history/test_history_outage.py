"""The store goes away and comes back: the sink loses nothing and stores nothing twice.

The test runs a PostgreSQL server of its own (initdb, pg_ctl, on a free port), points a sink at it,
keeps producing alerts, stops the server (pg_ctl stop -m fast), keeps producing, starts it again,
and then finds every alert stored exactly once, with each exporter's chain verifying. It prints
what it saw: alerts produced and stored, seconds the server was down, the sink's retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select

from monitor.history.store import HistoryStore
from monitor.history.tables import AlertTransition
from monitor.stream.topics import ensure_topics
from tests.history.records import alert
from tests.history.running import eventually, make_sink, stop
from tests.services.postgres import OwnPostgres, PostgresUnavailable
from tests.services.required import missing
from tests.streaming import unique_names


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    """A server of this test's own, apart from the session's: the test stops and starts it."""
    try:
        server = OwnPostgres()
    except PostgresUnavailable as exc:
        missing(str(exc))
    server.init().start()
    yield server
    server.remove()


async def stored(store: HistoryStore) -> int:
    async with store._engine.connect() as connection:
        return (await connection.execute(select(func.count()).select_from(AlertTransition))).scalar_one()


async def test_the_store_restarting_loses_nothing_and_stores_nothing_twice(
        embedded_bootstrap: str, own_postgres: OwnPostgres) -> None:
    names = unique_names()
    await ensure_topics(embedded_bootstrap, names, partitions=2)
    sink = make_sink(embedded_bootstrap, names, own_postgres.url, f"{names.prefix}monitor-history",
                     backoff_max=1.0)
    sink_task = asyncio.create_task(sink.run())
    produced: list[str] = []
    producing = asyncio.Event()
    producing.set()

    async def keep_producing() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=embedded_bootstrap, acks="all", linger_ms=2)
        await producer.start()
        try:
            number = 0
            while producing.is_set():
                number += 1
                message = alert(number, exporter=f"EXP-{number % 3}")
                await producer.send_and_wait(names.alerts, orjson.dumps(message), key=message["alert_id"].encode())
                produced.append(message["alert_id"])
                await asyncio.sleep(0.02)
        finally:
            await producer.stop()

    producer_task = asyncio.create_task(keep_producing())
    observer = await HistoryStore.open(own_postgres.url)
    try:
        await eventually(lambda: _at_least(observer, 20), 30, "the sink stores alerts before the outage")
        down_at = time.monotonic()
        await asyncio.to_thread(own_postgres.stop)
        during = len(produced)
        await asyncio.sleep(3.0)
        await asyncio.to_thread(own_postgres.start)
        seconds_down = time.monotonic() - down_at
        produced_while_down = len(produced) - during
        await asyncio.sleep(1.0)
        producing.clear()
        await producer_task
        caught_up = await eventually(lambda: _at_least(observer, len(produced)), 30,
                                     "every alert produced is stored once the store is back")
        await asyncio.sleep(1.0)  # anything stored twice would show now
        count = await stored(observer)
        transitions = {e: (await observer.verify_chain(e)) for e in await observer.exporters()}
        found, _ = await observer.alerts(exporters=None, limit=100_000)
        per_alert = [len(await observer.transitions(a["alert_id"])) for a in found]
    finally:
        producing.clear()
        with contextlib.suppress(Exception):
            await producer_task
        await stop(sink_task)
        await observer.close()

    print(f"\noutage: {len(produced)} alerts produced ({produced_while_down} while the store was down), "
          f"{count} stored; store down {seconds_down:.1f} s; sink retried {sink.stats.retries} times over "
          f"{sink.stats.seconds_down:.1f} s; all stored {caught_up:.1f} s after producing stopped")
    assert sink.stats.retries > 0, "the sink never met the outage"
    assert produced_while_down > 0
    assert count == len(produced) == len(set(produced))
    assert sorted(a["alert_id"] for a in found) == sorted(produced)
    assert set(per_alert) == {1}
    assert all(check.ok for check in transitions.values()), transitions
    assert sum(check.transitions for check in transitions.values()) == len(produced)


async def _at_least(store: HistoryStore, wanted: int) -> bool:
    try:
        return await stored(store) >= wanted
    except Exception:  # the server may still be coming back
        return False
