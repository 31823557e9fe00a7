"""Databases for the history store tests: a SQLite file per test, and a PostgreSQL database per session.

PostgreSQL: the session's server (`postgres_admin_dsn`: MONITOR_TEST_POSTGRES, or a server the
session starts itself). A fresh database `test_history_<random>` is made for the session and dropped at its end; each
test starts from an empty schema in it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from monitor.history.store import HistoryStore
from tests.postgres import admin, run_apart

T = TypeVar("T")


def asyncpg_url(dsn: str, database: str) -> str:
    """The SQLAlchemy URL of `database` on the server of an asyncpg DSN."""
    from sqlalchemy.engine import make_url

    return make_url(dsn).set(drivername="postgresql+asyncpg", database=database).render_as_string(
        hide_password=False)


@pytest.fixture(scope="session")
def postgres_url(postgres_admin_dsn: str) -> Iterator[str]:
    """SQLAlchemy URL of a database made for this session on the PostgreSQL server; dropped at the end."""
    name = f"test_history_{uuid.uuid4().hex[:12]}"
    run_apart(admin(postgres_admin_dsn, f'CREATE DATABASE "{name}"'))
    try:
        yield asyncpg_url(postgres_admin_dsn, name)
    finally:
        run_apart(admin(postgres_admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def empty_postgres(url: str) -> None:
    """Drop everything in the database's public schema (a test starts from an empty database)."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database: a SQLite file, or the session's PostgreSQL database emptied."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'history.sqlite3'}"
    url: str = request.getfixturevalue("postgres_url")
    await empty_postgres(url)
    return url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[HistoryStore]:
    """A history store opened (migrated) on an empty database, closed after the test."""
    opened = await HistoryStore.open(store_url)
    try:
        yield opened
    finally:
        await opened.close()
