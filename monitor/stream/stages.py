"""A worker's two stages as two processes: judging in the worker's own, its intake in a child.

Each stage is a Faust app with its own consumer and event loop (`monitor.stream.worker`), so
the intake draining a backlog never starves the judging of the envelopes it forwards, and the
two use two cores. They are one worker to its operator: the child lives and dies with the
worker (each watches the other), its log lines go to the worker's output, and the worker's
/metrics page includes the child's series.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from typing import Literal

from monitor.kafka import KafkaTarget, client_options

log = logging.getLogger(__name__)

Stage = Literal["intake", "judging"]
PARENT_VARIABLE = "MONITOR_WORKER_PARENT"  # in the intake's environment: the pid of the worker that started it
WATCH_SECONDS = 0.5  # how often each process looks whether the other still runs


def intake_group(app_id: str) -> str:
    """The intake stage's app id and consumer group, beside the judging stage's `app_id`."""
    return f"{app_id}-intake"


class IntakeProcess:
    """The intake stage of this worker, run as `monitor … worker --stage intake` in a child process."""

    def __init__(self, arguments: Sequence[str], host: str, port: int) -> None:
        self.command = [sys.executable, "-m", "monitor", *arguments, "--stage", "intake", "--web-port", str(port)]
        self.metrics_url = f"http://{host}:{port}/metrics"
        self.process: subprocess.Popen[bytes] | None = None
        self.stopping = False

    def start(self) -> None:
        env = {**os.environ, PARENT_VARIABLE: str(os.getpid())}
        self.process = subprocess.Popen(self.command, env=env, stdin=subprocess.DEVNULL)  # noqa: S603 - our own command
        log.info("intake stage started (pid %d); its metrics are part of this worker's", self.process.pid)

    def exited(self) -> int | None:
        """Its exit code once it has stopped, else None."""
        return None if self.process is None else self.process.poll()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop it as Ctrl-C would (it commits what it routed), and kill it after `timeout` seconds."""
        self.stopping = True
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("the intake stage (pid %d) did not stop within %.0f s; killed", self.process.pid, timeout)
            self.process.kill()
            self.process.wait()


def parent_pid() -> int | None:
    """The pid of the worker that started this intake process (None when it was started on its own)."""
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
