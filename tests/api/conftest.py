"""Fixtures of the API tests: the test network in a SQLite and a PostgreSQL history store, a token
file, and the app in process or served by uvicorn.

PostgreSQL: the server MONITOR_TEST_POSTGRES names (an asyncpg DSN of a database to connect to for
creating others; default the local server). A database `test_api_<random>` is made for the
session when a test needs it, and dropped at the end; without a server those tests are skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from monitor.access.tokens import create_token
from monitor.api import ApiSettings, create_app
from monitor.history.store import HistoryStore
from tests.api.network import A1, A2, D1, D2, WEBHOOKS, X9, Network, fill
from tests.postgres import admin, run_apart

T = TypeVar("T")
AS_OF = datetime(2026, 3, 6, tzinfo=UTC)  # the renewal assessments' "now": the day after the history ends
NO_BROKER = "127.0.0.1:9"  # the discard port: nothing listens there, so the broker check fails fast


@dataclass(frozen=True)
class Filled:
    """A SQLite history store file holding the test network, and what it holds."""

    path: Path
    network: Network

    @property
    def url(self) -> str:
        return sqlite_url(self.path)

    def copy(self, directory: Path) -> Filled:
        """A private copy, for a test that writes."""
        target = directory / "history.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            if Path(f"{self.path}{suffix}").exists():
                shutil.copyfile(f"{self.path}{suffix}", f"{target}{suffix}")
        return Filled(target, self.network)


@dataclass(frozen=True)
class Tokens:
    """A token file with one token per kind of caller."""

    path: Path
    regulator: str
    reviewer: str
    automaker: dict[str, str]  # by the one exporter id the token names

    def of(self, who: str) -> str:
        return {"regulator": self.regulator, "reviewer": self.reviewer}.get(who) or self.automaker[who]


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def settings_for(url: str, tokens: Tokens, **changes: Any) -> ApiSettings:
    """Settings naming everything explicitly, so nothing in the environment leaks into a test."""
    values: dict[str, Any] = {"database_url": url, "api_tokens": tokens.path, "data_dir": tokens.path.parent,
                              "kafka_bootstrap": NO_BROKER, "as_of": AS_OF, "ready_timeout_seconds": 2.0}
    values.update(changes)
    return ApiSettings(**values)


@pytest.fixture(scope="session")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Filled:
    """The test network in a SQLite store, written once per session through HistoryStore's write methods."""
    path = tmp_path_factory.mktemp("api-store") / "history.sqlite3"

    async def write() -> Network:
        store = await HistoryStore.open(sqlite_url(path), webhooks=WEBHOOKS)
        try:
            return await fill(store)
        finally:
            await store.close()

    return Filled(path, asyncio.run(write()))






@pytest.fixture(scope="session")
def postgres_network(postgres_admin_dsn: str) -> Iterator[tuple[str, Network]]:
    """URL of a PostgreSQL database holding the test network, and what it holds."""
    name = f"test_api_{uuid.uuid4().hex[:12]}"
    run_apart(admin(postgres_admin_dsn, f'CREATE DATABASE "{name}"'))
    url = make_url(postgres_admin_dsn).set(drivername="postgresql+asyncpg", database=name).render_as_string(
        hide_password=False)

    async def write() -> Network:
        store = await HistoryStore.open(url, webhooks=WEBHOOKS)
        try:
            return await fill(store)
        finally:
            await store.close()

    try:
        yield url, run_apart(write())
    finally:
        run_apart(admin(postgres_admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> Tokens:
    path = tmp_path_factory.mktemp("api-tokens") / "tokens.json"
    return Tokens(path=path, regulator=create_token(path, "regulator"), reviewer=create_token(path, "reviewer"),
                  automaker={e: create_token(path, "automaker", [e]) for e in (A1, A2, D1, D2, X9)})


@dataclass
class Api:
    """An httpx client on the app, with the tokens and what the store holds."""

    client: httpx.AsyncClient
    tokens: Tokens
    network: Network
    app: FastAPI

    async def get(self, path: str, who: str | None = "regulator", headers: dict[str, str] | None = None,
                  **params: Any) -> httpx.Response:
        sent = dict(headers or {})
        if who is not None:
            sent["Authorization"] = f"Bearer {self.tokens.of(who)}"
        query = {k.rstrip("_"): v for k, v in params.items() if v is not None}
        return await self.client.get(path, params=query or None, headers=sent)


async def serve_in_process(app: FastAPI, tokens: Tokens, network: Network) -> AsyncIterator[Api]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            yield Api(client, tokens, network, app)


@pytest.fixture
async def api(filled: Filled, tokens: Tokens) -> AsyncIterator[Api]:
    """The app in process (httpx's ASGI transport) over the shared, read-only test store."""
    async for served in serve_in_process(create_app(settings_for(filled.url, tokens)), tokens, filled.network):
        yield served


@pytest.fixture
async def writable_api(filled: Filled, tokens: Tokens, tmp_path: Path) -> AsyncIterator[tuple[Api, Filled]]:
    """The app in process over a private copy of the test store, which the test may write to."""
    mine = filled.copy(tmp_path)
    async for served in serve_in_process(create_app(settings_for(mine.url, tokens)), tokens, mine.network):
        yield served, mine


class LiveServer:
    """The app served by uvicorn on a free port of 127.0.0.1, in a thread of this process."""

    def __init__(self, app: FastAPI) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    @property
    def url(self) -> str:
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)


class PortThatAccepts:
    """A TCP port on 127.0.0.1 that accepts connections and closes them: what /readyz needs of a broker."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.thread = threading.Thread(target=self._accept, name="accepting", daemon=True)

    def _accept(self) -> None:
        with contextlib.suppress(OSError):  # the socket closed: done
            while True:
                connection, _ = self.socket.accept()
                connection.close()

    def __enter__(self) -> str:
        self.thread.start()
        return f"127.0.0.1:{self.socket.getsockname()[1]}"

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        self.socket.close()
        self.thread.join(5)


@pytest.fixture(scope="session")
def live_api(filled: Filled, tokens: Tokens, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of the app served by a real uvicorn over a copy of the test store (read-only use),
    ready: its broker check connects to a port that accepts."""
    mine = filled.copy(tmp_path_factory.mktemp("live-store"))
    with PortThatAccepts() as bootstrap, LiveServer(create_app(settings_for(mine.url, tokens,
                                                                            kafka_bootstrap=bootstrap))) as live:
        yield live.url


@pytest.fixture(scope="session")
def live_api_on_postgres(postgres_network: tuple[str, Network], tokens: Tokens) -> Iterator[str]:
    """Base URL of the app served by a real uvicorn over the PostgreSQL test store (read-only use)."""
    url, _ = postgres_network
    with PortThatAccepts() as bootstrap, LiveServer(create_app(settings_for(url, tokens,
                                                                            kafka_bootstrap=bootstrap))) as live:
        yield live.url
