"""The session's PostgreSQL server for the store and API tests, and running its set-up apart from any loop.

MONITOR_TEST_POSTGRES names a server to use (an asyncpg DSN of a database to connect to for
creating others); without it the session starts a server of its own (`tests.services.postgres`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run_apart(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end in a thread and loop of its own, whatever loop the caller has."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def admin(dsn: str, statement: str) -> None:
    """Run one statement (CREATE DATABASE, DROP DATABASE) on the administration database `dsn`."""
    import asyncpg

    connection = await asyncpg.connect(dsn, timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()
