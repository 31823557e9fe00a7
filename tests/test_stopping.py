"""Running a piece of work until a signal: SIGTERM stops it cleanly, SIGUSR1 shows where it waits."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from monitor.stopping import run_until_stopped


async def test_sigusr1_writes_every_tasks_stack_and_the_work_goes_on(capfd: pytest.CaptureFixture[str]) -> None:
    done = asyncio.Event()

    async def waiting_for_something() -> None:
        await done.wait()

    async def signals() -> None:
        await asyncio.sleep(0.1)
        os.kill(os.getpid(), signal.SIGUSR1)
        await asyncio.sleep(0.2)
        assert not running.done(), "SIGUSR1 does not stop the work"
        os.kill(os.getpid(), signal.SIGTERM)

    running = asyncio.create_task(run_until_stopped(waiting_for_something(), name="the-work", what="test"))
    await signals()
    await asyncio.wait_for(running, 5)  # SIGTERM stopped it, and it returned normally
    written = capfd.readouterr().err
    assert "the-work" in written and "waiting_for_something" in written, written[-2000:]
