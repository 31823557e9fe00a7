"""Running a long-lived piece of work until Ctrl-C or SIGTERM, for the commands that have no framework doing it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


async def run_until_stopped(work: Coroutine[Any, Any, Any], *, name: str, what: str) -> None:
    """Run `work` as a task until it ends, or until SIGINT or SIGTERM cancels it (then return normally,
    so the caller can report and clean up). A cancellation from outside is passed on."""
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(work, name=name)

    def on_signal(signum: int) -> None:
        log.warning("%s: signal %d, stopping", what, signum)
        task.cancel()

    handled = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # no signal handlers off the main thread
            loop.add_signal_handler(signum, on_signal, signum)
            handled.append(signum)
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # cancelled from outside, not by a signal
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
