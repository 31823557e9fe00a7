"""The store goes away and comes back: the sink loses nothing and stores nothing twice.

The test runs a PostgreSQL server of its own (initdb, pg_ctl, on a free port), points a sink at it,
keeps producing alerts, stops the server (pg_ctl stop -m fast), keeps producing, starts it again,
and then finds every alert stored exactly once, with each exporter's chain verifying. It prints
what it saw: alerts produced and stored, seconds the server was down, the sink's retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select

from monitor.embedded.broker import free_port
from monitor.history.store import HistoryStore
from monitor.history.tables import AlertTransition
from monitor.stream.topics import ensure_topics
from tests.history.records import alert
from tests.history.running import eventually, make_sink, stop
from tests.streaming import unique_names


def server_binaries() -> Path | None:
    """The directory of initdb, pg_ctl and postgres, if a PostgreSQL server is installed."""
    found = shutil.which("initdb") or shutil.which("initdb", path="/usr/local/bin")
    if found:
        return Path(found).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return versions[-1].parent if versions else None


class OwnPostgres:
    """A PostgreSQL server in a data directory of its own, on a free port of 127.0.0.1.

    initdb refuses to run as root, so as root the server runs as the `postgres` user, in a
    directory that user owns (pytest's temporary directories are private to root).
    """

    def __init__(self, base: Path, binaries: Path) -> None:
        self.binaries = binaries
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            user = pwd.getpwnam("postgres")
            self.data = Path(tempfile.mkdtemp(prefix="monitor-pg-"))
            os.chown(self.data, user.pw_uid, user.pw_gid)
            self.prefix = ["runuser", "-u", "postgres", "--"]
        else:
            self.data = base / "pg"
            self.data.mkdir()
            self.prefix = []
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        done = subprocess.run([*self.prefix, *command], capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")

    def init(self) -> None:
        self._run(str(self.binaries / "initdb"), "-D", str(self.data / "db"), "-U", "postgres", "-A", "trust",
                  "-E", "UTF8", "--locale=C", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(str(self.binaries / "pg_ctl"), "start", "-w", "-t", "30", "-D", str(self.data / "db"),
                  "-l", str(self.data / "server.log"), "-o", options)

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.binaries / "pg_ctl"), "stop", "-w", "-t", "30", "-m", mode, "-D", str(self.data / "db"))

    def remove(self) -> None:
        with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
            self.stop("immediate")
        shutil.rmtree(self.data, ignore_errors=True)


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[OwnPostgres]:
    binaries = server_binaries()
    if binaries is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) to run a server of the test's own")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run a server as (initdb refuses root)")
    server = OwnPostgres(tmp_path, binaries)
    server.init()
    server.start()
    yield server
    server.remove()


async def stored(store: HistoryStore) -> int:
    async with store._engine.connect() as connection:
        return (await connection.execute(select(func.count()).select_from(AlertTransition))).scalar_one()


async def test_the_store_restarting_loses_nothing_and_stores_nothing_twice(
        kafka_bootstrap: str, own_postgres: OwnPostgres) -> None:
    names = unique_names()
    await ensure_topics(kafka_bootstrap, names, partitions=2)
    sink = make_sink(kafka_bootstrap, names, own_postgres.url, f"{names.prefix}monitor-history",
                     backoff_max=1.0)
    sink_task = asyncio.create_task(sink.run())
    produced: list[str] = []
    producing = asyncio.Event()
    producing.set()

    async def keep_producing() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=2)
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
