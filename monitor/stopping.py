"""Running a long-lived piece of work until Ctrl-C or SIGTERM, for the commands that have no framework doing it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


async def run_until_stopped(work: Coroutine[Any, Any, Any], *, name: str, what: str) -> None:
    """Run `work` as a task until it ends, or until SIGINT or SIGTERM cancels it (then return normally,
    so the caller can report and clean up). A cancellation from outside is passed on. SIGUSR1 writes
    every thread's stack and every task's to stderr, as a Faust worker does: what each is waiting for."""
    from mode.utils.logging import cry

    loop = asyncio.get_running_loop()
    task = asyncio.create_task(work, name=name)

    def on_signal(signum: int) -> None:
        log.warning("%s: signal %d, stopping", what, signum)
        task.cancel()

    def on_usr1() -> None:
        log.warning("%s: signal %d, writing every thread's and task's stack", what, signal.SIGUSR1)
        cry(file=sys.stderr)

    handled = []
    for signum, handler, args in ((signal.SIGINT, on_signal, (signal.SIGINT,)),
                                  (signal.SIGTERM, on_signal, (signal.SIGTERM,)), (signal.SIGUSR1, on_usr1, ())):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # no signal handlers off the main thread
            loop.add_signal_handler(signum, handler, *args)
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
