"""A worker's stages as processes: judging in the worker's own, its intake and its history in children forked from it.

Each stream stage is a Faust app with its own consumer and event loop (`monitor.stream.worker`),
so the intake draining a backlog never starves the judging of the envelopes it forwards. The
history stage (the history sink and the webhook deliverer, `run_history_stage`) writes the
history store in a process of its own too: in the judging stage's event loop, storing a
backlog's snapshots took half of that process's time. They are one worker to its operator:
the children live and die with the worker (each watches the other), their log lines go to the
worker's output, and the worker's /metrics page includes the children's series.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

import faust
import mode

from monitor.kafka import KafkaTarget, client_options
from monitor.stopping import run_until_stopped

if TYPE_CHECKING:
    from monitor.delivery.deliverer import Deliverer
    from monitor.history.sink import HistorySink

log = logging.getLogger(__name__)

Stage = Literal["intake", "judging"]
PARENT_VARIABLE = "MONITOR_WORKER_PARENT"  # in a child stage's environment: the pid of the worker that started it
WATCH_SECONDS = 0.5  # how often each process looks whether the other still runs
# the history stage yields the CPU to the stream stages when the cores are short: a history store
# that falls behind catches up when the load eases, an alert published late is late for good
HISTORY_NICENESS = 5


def intake_group(app_id: str) -> str:
    """The intake stage's app id and consumer group, beside the judging stage's `app_id`."""
    return f"{app_id}-intake"


class StageProcess:
    """A stage of this worker (`name`: "intake" or "history") in a child forked from it (it shares
    what the worker has imported, so it starts at once), serving its metrics on host:port."""

    def __init__(self, name: str, host: str, port: int) -> None:
        self.name = name
        self.metrics_url = f"http://{host}:{port}/metrics"
        self.pid: int | None = None
        self.code: int | None = None
        self.stopping = False

    def start(self, run: Callable[[], None]) -> None:
        """Fork, and run `run` (the stage, until it stops) in the child. Called before the
        worker starts threads or event loops of its own."""
        pid = os.fork()
        if pid == 0:
            os._exit(_child(self.name, run))
        self.pid = pid
        log.info("%s stage started (pid %d); its metrics are part of this worker's", self.name, pid)

    def exited(self) -> int | None:
        """Its exit code once it has stopped (minus the signal that killed it), else None."""
        if self.pid is not None and self.code is None:
            try:
                done, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped already
                return self.code
            if done:
                self.code = os.waitstatus_to_exitcode(status)
        return self.code

    def request_stop(self) -> None:
        """Ask it to stop as Ctrl-C would (it commits what it routed), without waiting."""
        self.stopping = True
        if self.pid is not None and self.exited() is None:
            os.kill(self.pid, signal.SIGTERM)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop it (`request_stop`) and wait; kill it after `timeout` seconds."""
        if not self.stopping:
            self.request_stop()
        deadline = time.monotonic() + timeout
        while self.pid is not None and self.exited() is None:
            if time.monotonic() >= deadline:
                log.warning("the %s stage (pid %d) did not stop within %.0f s; killed", self.name, self.pid, timeout)
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                return
            time.sleep(0.05)


def _child(name: str, run: Callable[[], None]) -> int:
    """A forked stage's life: its exit code."""
    os.environ[PARENT_VARIABLE] = str(os.getppid())
    code = 0
    try:
        run()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    except BaseException:
        log.exception("the %s stage failed", name)
        code = 1
    finally:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    return code


class StopTogether(mode.Service):
    """A service of the worker's Faust worker that asks its child stages to stop as soon as the
    worker starts stopping, so that the processes shut down at once rather than one after the other."""

    def __init__(self, children: Sequence[StageProcess]) -> None:
        super().__init__()
        self.children = list(children)

    async def on_stop(self) -> None:
        for child in self.children:
            child.request_stop()


class StageWorker(faust.Worker):
    """Faust's worker for a stage's app, less the second mode's worker sleeps once everything has
    stopped, before it closes the event loop (the last callbacks are run in a tenth of it):
    a second more before a stopped worker's process, and the operator's shell, is free."""

    async def _sentinel_task(self) -> None:
        await asyncio.sleep(0.1)


def parent_pid() -> int | None:
    """The pid of the worker that started this stage's process (None when it was started on its own)."""
    value = os.environ.get(PARENT_VARIABLE)
    return int(value) if value and value.isdigit() else None


async def carry_committed_offsets(kafka: KafkaTarget, source_group: str, target_group: str,
                                  topics: Sequence[str]) -> int:
    """Give `target_group` the offsets `source_group` committed on `topics`, when it has none.

    Before the stages had consumer groups of their own, the worker's one group (`app_id`) read
    the input topics; its intake group takes over from where that one was, instead of reading
    every input again from the start. Returns how many partitions' offsets were carried.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.structs import OffsetAndMetadata

    source = AIOKafkaConsumer(**client_options(kafka), group_id=source_group, enable_auto_commit=False)
    target = AIOKafkaConsumer(**client_options(kafka), group_id=target_group, enable_auto_commit=False)
    await source.start()
    await target.start()
    try:
        if not all(source.partitions_for_topic(topic) for topic in topics):
            await source._client.force_metadata_update()  # topics just made may not be known yet
        partitions = [TopicPartition(topic, partition) for topic in topics
                      for partition in sorted(source.partitions_for_topic(topic) or ())]
        if not partitions:
            return 0
        for tp in partitions:
            if await target.committed(tp) is not None:
                return 0  # the intake group has started before: its own offsets stand
        found = {tp: offset for tp in partitions if (offset := await source.committed(tp)) is not None}
        if found:
            target.assign(list(found))
            await target.commit({tp: OffsetAndMetadata(offset, "") for tp, offset in found.items()})
            log.info("the intake group %s starts from the offsets %s committed on %d input partitions",
                     target_group, source_group, len(found))
        return len(found)
    finally:
        await source.stop()
        await target.stop()


def run_history_stage(sink: HistorySink, deliverer: Deliverer | None, host: str, port: int) -> None:
    """The history stage of a worker, in its forked child: the history sink and, given one, the
    webhook deliverer, with their metrics on host:port, until SIGTERM (the worker stopping), the
    worker's death, or a failure of either (raised: the child exits 1 and the worker stops)."""
    from prometheus_client import start_http_server

    os.nice(HISTORY_NICENESS)
    start_http_server(port, addr=host)
    asyncio.run(run_until_stopped(_history(sink, deliverer, parent_pid()), name="history-stage", what="history"))


async def _history(sink: HistorySink, deliverer: Deliverer | None, parent: int | None) -> None:
    async def watch() -> None:
        while parent is None or os.getppid() == parent:
            await asyncio.sleep(WATCH_SECONDS)
        log.warning("the worker that started this history stage (pid %d) is gone; stopping", parent)

    jobs = [asyncio.create_task(sink.run(), name="history-sink"), asyncio.create_task(watch(), name="watch")]
    if deliverer is not None:
        jobs.append(asyncio.create_task(deliverer.run(), name="webhook-deliverer"))
    try:
        done, _ = await asyncio.wait(jobs, return_when=asyncio.FIRST_COMPLETED)
    finally:  # also when cancelled (a signal): each stops cleanly
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
    for job in done:
        job.result()  # a failure of either is the stage's
