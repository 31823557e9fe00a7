"""The PostgreSQL server the store and API tests use, and running its set-up apart from any loop.

MONITOR_TEST_POSTGRES names it (an asyncpg DSN of a database to connect to for creating others);
the default is the local server, postgresql://postgres@127.0.0.1:5432/postgres.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
ADMIN_DSN = os.environ.get("MONITOR_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def run_apart(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end in a thread and loop of its own, whatever loop the caller has."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def admin(statement: str) -> None:
    """Run one statement (CREATE DATABASE, DROP DATABASE) on the administration database."""
    import asyncpg

    connection = await asyncpg.connect(ADMIN_DSN, timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()
