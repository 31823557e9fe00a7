"""Running a history sink inside a test: made with fast group timeouts and back-off, waited on, stopped."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from monitor.contracts.policy import DEFAULT_POLICY
from monitor.history.sink import HistorySink
from monitor.history.store import applied_policies
from monitor.obligations.policy import PolicyBook
from monitor.stream.topics import TopicNames

FAST_GROUP = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 300, "rebalance_timeout_ms": 2000}


def make_sink(bootstrap: str, names: TopicNames, url: str, group: str, *,
              kind: type[HistorySink] = HistorySink, **options: Any) -> HistorySink:
    """A sink (of `kind`) of the default policy's versions that joins its group and retries quickly
    (`options` win)."""
    settings: dict[str, Any] = {
        "policies": applied_policies(PolicyBook(DEFAULT_POLICY).describe(["2026.1"])), "poll_seconds": 0.1,
        "backoff_initial": 0.05, "backoff_max": 0.5, "consumer_options": FAST_GROUP, **options}
    return kind(bootstrap=bootstrap, names=names, group_id=group, store_url=url, **settings)


async def eventually(condition: Callable[[], Awaitable[bool]], timeout: float, what: str) -> float:
    """Seconds until `condition()` holds; AssertionError after `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if await condition():
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
