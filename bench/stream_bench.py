"""`monitor worker` on a real broker: throughput, stock lines, breach latency, start-up,
each beside baselines measured in the same run on the same messages and the same broker.

    python bench/stream_bench.py              # 60 s sustained windows, ~11 minutes in all
    python bench/stream_bench.py --quick      # 15 s windows, a smoke run (~5 minutes)
    python bench/stream_bench.py --json       # also write the figures to bench/out/stream.json
    python bench/stream_bench.py --only throughput,startup
    python bench/stream_bench.py --broker kafka   # on Apache Kafka (KRaft, one node) instead
    python bench/stream_bench.py --quick --profile /tmp/prof   # and where the worker's time goes (py-spy)

It starts its own broker, the embedded one (Tansu, in memory; the default) or with `--broker
kafka` Apache Kafka 4.x in KRaft mode (one node, broker and controller, from the jars
tests/services/pom.xml resolves from Maven Central; needs java and mvn), and every process it
measures, each on topics of its own prefix, and stops them all (by pid) when it ends, however it ends.

1. **throughput**: a backlog of synthetic network events (up to 40 exporters, 3 markets each,
   the days up to today, the simulator's share of bad messages) is produced first; then, one
   after another on the same four input topics, each in a process of its own and in a consumer
   group of its own, (a) a plain aiokafka consumer that iterates and counts, (b) a Faust
   agent that does nothing, configured as the worker configures its app, one message at a
   time and (b') in `take_events` batches as the worker's intake takes them, and (c) the real
   `monitor worker`. Rates are input messages per second over a window that starts a few
   seconds after the first message (the steady part), read from each process's own counter
   (`/count`, or the worker's `monitor_events_consumed_total`; its group's committed offsets
   if /metrics does not answer). The raw consumer drains the whole backlog faster than a
   window: its rate is over the drain. For the worker it also counts the input events its
   judging stage finished in the window (the envelopes between its group's committed offsets
   on the internal topic), since intake alone can run ahead of judging.
2. **stock lines**: parts-stock reports of ~120 to ~1,350 lines each (the simulator's depots
   with a 1,000-part catalogue, hourly reports: the day's first lists every part, later ones
   what moved), through the same consumers; lines/s = reports/s x mean lines. The baselines
   drain the backlog in seconds (rate over the drain); the worker's window is at most 30 s.
3. **breach latency**: the worker on the wall clock, background events paced at 5,000/s (the
   simulator's events, stamped with the moment they are sent), and a few hundred tickets
   sent 5 s before their 48-hour deadline (opened at now - 48 h + 5 s), spread over the
   window. The alerts topic is read as it is written; for each breach the latency is
   raised_at - deadline (the alert's opened_at), and also when this process read it. The
   baseline: the same with no background load, on the same worker, first.
4. **start-up**: with 20,000 events waiting, from starting the process to its first processed
   message (the first envelope on the internal topic) and to its first alert transition
   (the first message on the alerts topic), both watched every 20 ms; the median of 3
   starts, each a fresh consumer group on topics of its own. Part 1's consumers' start to
   first message are its baselines.

Absolute rates on shared machines vary from day to day; the ratios to the baselines of the
same run are what to compare. The worker, the broker and this process share the machine's
cores: the CPU columns say how much each used during a window.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import orjson

REPO = Path(__file__).resolve().parent.parent
CONSUMERS = Path(__file__).resolve().parent / "stream_consumers.py"

# ARCHITECTURE.md, Targets
TARGET_EVENTS_PER_SECOND = 10_000
TARGET_RATIO_TO_NOOP = 0.75  # this bench's brief: the worker keeps 3/4 of a do-nothing agent's rate
TARGET_LINES_PER_SECOND = 100_000
TARGET_BREACH_P99_SECONDS = 1.0
TARGET_START_SECONDS = 5.0
BACKGROUND_RATE = 5_000  # events/s under which breach latency is measured
# the baseline's trickle of current events: with none, each exporter's latest data would be the
# tickets' own opening, 48 hours old, and its clock would run on that event time until it goes
# quiet (OBLIGATIONS.md, Time), so no breach would be due on the wall clock
IDLE_RATE = 20.0
LEAD_SECONDS = 5.0  # tickets arrive this long before their deadline ("opened at now - 48 h + a few seconds")

DAY_SECONDS = 86_400
DEADLINE = timedelta(hours=48)
TICKS = os.sysconf("SC_CLK_TCK")


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---- processes: started here, stopped here, by pid --------------------------------------------------


def _family(pid: int) -> list[int]:
    """`pid` and the processes it started, and theirs (a worker runs its intake stage in a child)."""
    found, queue = [], [pid]
    while queue:
        at = queue.pop()
        found.append(at)
        try:
            for task in Path(f"/proc/{at}/task").iterdir():
                queue += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds a process and its children have used so far (None when it is gone)."""
    if pid is None:
        return None
    total = None
    for member in _family(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total = (total or 0.0) + (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (14, 15 of stat)
    return total


def _family_kib(pid: int, field_name: str) -> int | None:
    """A /proc status field (VmRSS, VmHWM) of the process and its children, added up."""
    values = [value for member in _family(pid) if (value := _status_kib(member, field_name)) is not None]
    return sum(values) if values else None


def _status_kib(pid: int, field_name: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field_name}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


class Child:
    """A process this bench started, in a session of its own (a Ctrl-C at the terminal reaches
    only the bench, which then stops it), with its output in a log file."""

    running: ClassVar[list[Child]] = []

    def __init__(self, name: str, command: list[str], log_path: Path, *, env: dict[str, str] | None = None,
                 cwd: Path | None = None, capture: bool = False) -> None:
        self.name = name
        self.log_path = log_path
        self.started = time.monotonic()
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(command, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                            stdout=subprocess.PIPE if capture else log, stderr=log,
                                            start_new_session=True)
        Child.running.append(self)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def peak_rss_kib(self) -> int | None:
        """The peak resident set (VmHWM) of the process and its children, added up, while it runs
        (the worker's is its two stages': the judging in its own process, the intake in a child)."""
        return _family_kib(self.pid, "VmHWM")

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def check(self) -> None:
        if not self.alive():
            raise RuntimeError(f"{self.name} (pid {self.pid}) exited with {self.process.returncode}; "
                               f"its log ({self.log_path}) ends:\n{self.tail()}")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to its pid, then SIGKILL to its own process group if it lingers."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                progress(f"{self.name} (pid {self.pid}) ignored SIGTERM for {timeout:.0f} s; killing it")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.process.wait(10)
        if self in Child.running:
            Child.running.remove(self)

    @classmethod
    def stop_all(cls) -> None:
        for child in list(cls.running):
            try:
                child.stop()
            except Exception as exc:  # keep stopping the others
                progress(f"could not stop {child.name} (pid {child.pid}): {exc!r}")


def _clean_env(extra: dict[str, str]) -> dict[str, str]:
    """Our environment without MONITOR_* settings (no stray MONITOR_AS_OF), with the repo importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


def _get(url: str, timeout: float = 2.0) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 - http://127.0.0.1 only
            body: bytes = answer.read()
            return body
    except (OSError, urllib.error.URLError):
        return None


def metric_sum(text: str, name: str) -> float:
    """The sum over every label set of one metric in Prometheus text format."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")):
            total += float(line.rsplit(" ", 1)[1])
    return total


def loop_lag(text: str) -> tuple[float, float, float]:
    """From a worker's monitor_event_loop_lag_seconds histogram (its two processes' loops added
    up): probes so far, those later than 0.1 s, and the upper bound of the worst one."""
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith("monitor_event_loop_lag_seconds_bucket{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[math.inf if bound == "+Inf" else float(bound)] = float(line.rsplit(" ", 1)[1])
    count = buckets.get(math.inf, 0.0)
    worst = min((bound for bound, below in buckets.items() if below >= count), default=math.inf)
    return count, count - buckets.get(0.1, count), worst


def metric_value(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")):
            return float(line.rsplit(" ", 1)[1])
    return None


class OffsetProbe:
    """Committed offsets of a consumer group and end offsets of topics, asked from a thread of its own
    (its own event loop and clients), so the bench's sampling loop can stay synchronous."""

    def __init__(self, bootstrap: str, group: str) -> None:
        import threading

        self.bootstrap, self.group = bootstrap, group
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="offset-probe", daemon=True)
        self.thread.start()
        self.consumer: Any = None

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    async def _clients(self) -> None:
        from aiokafka import AIOKafkaConsumer

        if self.consumer is None:
            # never subscribed, so it never joins the group: it only asks for the group's offsets
            # (aiokafka's admin client asks in a way Tansu answers with a frame aiokafka cannot read)
            self.consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=self.group,
                                             enable_auto_commit=False)
            await self.consumer.start()

    async def _partitions(self, topics: tuple[str, ...]) -> list[Any]:
        from aiokafka import TopicPartition

        cluster = await self.consumer._client.fetch_all_metadata()  # fresh metadata (it updates no client state)
        return [TopicPartition(t, p) for t in topics for p in sorted(cluster.partitions_for_topic(t) or ())]

    async def _committed(self, topics: tuple[str, ...]) -> dict[Any, int]:
        await self._clients()
        return {tp: max(0, await self.consumer.committed(tp) or 0) for tp in await self._partitions(topics)}

    async def _ends(self, topics: tuple[str, ...]) -> dict[str, int]:
        await self._clients()
        ends = await self.consumer.end_offsets(await self._partitions(topics))
        totals = dict.fromkeys(topics, 0)
        for tp, end in ends.items():
            totals[tp.topic] += end
        return totals

    def committed(self, topics: tuple[str, ...]) -> int:
        """Messages of `topics` the group has committed, summed over partitions."""
        return sum(self.committed_offsets(topics).values())

    def committed_offsets(self, topics: tuple[str, ...]) -> dict[Any, int]:
        """The group's committed offset of each partition of `topics` (0 where none is committed)."""
        return dict(self._run(self._committed(topics)))

    def ends(self, topics: tuple[str, ...]) -> dict[str, int]:
        """Messages on each of `topics` (the sum of its partitions' end offsets)."""
        return dict(self._run(self._ends(topics)))

    def close(self) -> None:
        async def stop() -> None:
            if self.consumer is not None:
                await self.consumer.stop()

        with contextlib.suppress(Exception):
            self._run(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class Worker(Child):
    """A `monitor worker` process on the wall clock, with its own group and web port."""

    def __init__(self, name: str, bootstrap: str, prefix: str, workdir: Path, *, app_id: str | None = None,
                 env: dict[str, str] | None = None) -> None:
        from monitor.embedded.broker import free_port
        from monitor.stream.topics import TopicNames

        self.web_port = free_port()
        self.app_id = app_id or f"{prefix}bench-{uuid.uuid4().hex[:6]}"
        # Faust keeps a "<app_id>-data" directory in its working directory: the bench's, not the repo
        run_dir = workdir / f"run-{self.web_port}"
        run_dir.mkdir(parents=True, exist_ok=True)
        settings = {"MONITOR_KAFKA_BOOTSTRAP": bootstrap, "MONITOR_TOPIC_PREFIX": prefix,
                    "MONITOR_APP_ID": self.app_id, "MONITOR_WEB_PORT": str(self.web_port),
                    "MONITOR_DATA_DIR": str(run_dir / "data"), **(env or {})}
        super().__init__(name, [sys.executable, "-m", "monitor", "worker"], workdir / f"{name}-{self.web_port}.log",
                         env=_clean_env(settings), cwd=run_dir)
        self.bootstrap = bootstrap

        self.names = TopicNames.of(prefix)
        self.metrics_refused: str | None = None  # why /metrics cannot be read, once it answered with an error
        self._offsets: OffsetProbe | None = None

    def metrics(self) -> str | None:
        """Its /metrics text; None while it does not answer, or when it answers with an error."""
        if self.metrics_refused is not None:
            return None
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/metrics",
                                        timeout=2.0) as answer:
                return str(answer.read().decode())
        except urllib.error.HTTPError as exc:
            self.metrics_refused = f"GET /metrics answered {exc.code} {exc.reason}"
            progress(f"  {self.name}: {self.metrics_refused}; counting its consumer group's committed offsets "
                     "and the output topics' end offsets instead")
        except OSError:
            pass
        return None

    def offsets(self) -> OffsetProbe:
        if self._offsets is None:
            self._offsets = OffsetProbe(self.bootstrap, self.app_id)
        return self._offsets

    def consumed(self) -> float | None:
        """Input messages read: its counter, else (no /metrics) what its group has committed."""
        text = self.metrics()
        if text is not None:
            return metric_sum(text, "monitor_events_consumed_total")
        if self.metrics_refused is None:
            return None  # not answering yet
        return float(self.offsets().committed(self.names.inputs))

    def figures(self) -> dict[str, float]:
        """Alerts, dead letters and snapshots published so far (end offsets of its own output topics,
        which no other process writes), and how far its clock is behind the wall (from /metrics)."""
        names = self.names
        ends = self.offsets().ends((names.alerts, names.deadletter, names.compliance))
        text = self.metrics() or ""
        return {"transitions": ends[names.alerts], "rejected": ends[names.deadletter],
                "snapshots": ends[names.compliance],
                "clock_behind": metric_value(text, "monitor_clock_behind_seconds") or float("nan")}

    def stop(self, timeout: float = 15.0) -> None:
        super().stop(timeout)
        if self._offsets is not None:
            self._offsets.close()
            self._offsets = None


class NothingAgent(Child):
    """The do-nothing Faust agent of bench/stream_consumers.py."""

    def __init__(self, name: str, bootstrap: str, topics: tuple[str, ...], workdir: Path, *, batch: int = 0) -> None:
        from monitor.embedded.broker import free_port

        self.web_port = free_port()
        run_dir = workdir / f"run-{self.web_port}"
        run_dir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, str(CONSUMERS), "faust", *topics, "--bootstrap", bootstrap,
                   "--group", f"bench-nothing-{uuid.uuid4().hex[:8]}", "--web-port", str(self.web_port),
                   "--batch", str(batch)]
        super().__init__(name, command, workdir / f"{name}-{self.web_port}.log", env=_clean_env({}), cwd=run_dir)

    def counted(self) -> dict[str, float] | None:
        body = _get(f"http://127.0.0.1:{self.web_port}/count")
        return orjson.loads(body) if body is not None else None

    def consumed(self) -> float | None:
        counted = self.counted()
        return None if counted is None else counted["messages"]


# ---- one sustained window ---------------------------------------------------------------------------


@dataclass
class Window:
    """What a consumer did in its measurement window."""

    name: str
    messages: float
    seconds: float
    start_to_first: float
    exhausted: bool = False  # the backlog ran out before the window's end
    cpu: float | None = None  # CPU seconds per second (1.0 = one core) of the measured process
    broker_cpu: float | None = None
    peak_rss_kib: int | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0


def sustained(child: Worker | NothingAgent, total: int, duration: float, warm_up: float,
              broker_pid: int | None, *, first_timeout: float = 120.0,
              snapshot: Callable[[], Any] | None = None, profile: Path | None = None) -> Window:
    """Sample the child's consumed counter: from `warm_up` s after its first message, for `duration`
    s or until it has read all `total` messages (then the window ends at its last message). When
    the backlog runs out during the warm-up, the window is the whole drain, from the first message."""
    while True:
        child.check()
        count = child.consumed()
        if count:
            first, first_wall, c0 = time.monotonic(), time.time(), count
            cpu0, broker0 = _cpu_seconds(child.pid), _cpu_seconds(broker_pid)
            break
        if time.monotonic() - child.started > first_timeout:
            raise RuntimeError(f"{child.name} consumed nothing in {first_timeout:.0f} s:\n{child.tail()}")
        time.sleep(0.05)
    start_to_first = first - child.started
    progress(f"  {child.name}: first message {start_to_first:.1f} s after start; warming up {warm_up:.0f} s")
    drained = False
    while time.monotonic() < first + warm_up and not drained:
        time.sleep(0.1)
        drained = (child.consumed() or 0) >= total
    start_wall, start = time.time(), time.monotonic()
    c1 = child.consumed() or 0.0
    cpu1, broker1 = _cpu_seconds(child.pid), _cpu_seconds(broker_pid)
    if drained:  # too short a backlog for a window: the whole drain is the window
        start_wall, start, c1, cpu1, broker1 = first_wall, first, c0, cpu0, broker0
    before = child.figures() if isinstance(child, Worker) else {}
    snapshots = [snapshot()] if snapshot is not None else []
    spy = None
    if profile is not None and not drained:
        spy = Child(f"py-spy of {child.name}", [str(Path(sys.executable).parent / "py-spy"), "record", "--pid",
                                                str(child.pid), "--duration", str(round(duration)), "--rate", "100",
                                                "--format", "raw", "--nolineno", "--gil", "--output", str(profile)],
                    profile.with_suffix(".log"))
    end, c2, exhausted = time.monotonic(), c1, drained
    next_note = start + 15
    while not exhausted:
        time.sleep(0.2)
        child.check()
        now = time.monotonic()
        count = child.consumed()
        if count is not None:
            end, c2 = now, count
        if c2 >= total:
            exhausted = True
            break
        if now - start >= duration:
            break
        if now >= next_note:
            next_note = now + 15
            progress(f"  {child.name}: {now - start:.0f} s, {(c2 - c1) / (now - start):,.0f} messages/s so far")
    if exhausted:
        end, c2 = time.monotonic(), float(total)
        if not drained and end - start < 5.0:  # a window too short to mean much: take the whole drain
            drained = True
            start_wall, start, c1, cpu1, broker1 = first_wall, first, c0, cpu0, broker0
    cpu2, broker2 = _cpu_seconds(child.pid), _cpu_seconds(broker_pid)
    after = child.figures() if isinstance(child, Worker) else {}
    if snapshot is not None:
        snapshots.append(snapshot())
    if spy is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            spy.process.wait(15)  # it writes its file when its duration is over
        spy.stop()
    seconds, messages = end - start, c2 - c1
    if exhausted and isinstance(child, NothingAgent):
        counted = child.counted() or {}
        if counted.get("last"):  # its own times of its first and last message
            if drained:
                seconds, messages = float(counted["last"]) - float(counted["first"]), counted["messages"] - 1
            else:
                seconds = float(counted["last"]) - start_wall
    window = Window(child.name, messages, seconds, start_to_first, exhausted,
                    cpu=None if cpu1 is None or cpu2 is None else (cpu2 - cpu1) / (end - start),
                    broker_cpu=None if broker1 is None or broker2 is None else (broker2 - broker1) / (end - start),
                    peak_rss_kib=child.peak_rss_kib())
    if drained:
        window.note = f"drained the whole backlog in {window.seconds:.1f} s: rate over the whole drain"
    elif exhausted:
        window.note = "the backlog ran out: the window ends at its last message"
    if before and after:
        window.extra.update({"transitions": after["transitions"] - before["transitions"],
                             "rejected": after["rejected"] - before["rejected"],
                             "snapshots": after["snapshots"] - before["snapshots"],
                             "clock_behind_s": after["clock_behind"]})
    if snapshots:
        window.extra["snapshots_taken"] = snapshots
    return window


def raw_consumer(bootstrap: str, topics: tuple[str, ...], total: int, seconds: float, workdir: Path,
                 broker_pid: int | None) -> Window:
    """A plain aiokafka consumer (its own process and group) over the topics: its steady rate."""
    command = [sys.executable, str(CONSUMERS), "raw", *topics, "--bootstrap", bootstrap,
               "--group", f"bench-raw-{uuid.uuid4().hex[:8]}", "--expect", str(total), "--seconds", str(seconds)]
    broker1, started = _cpu_seconds(broker_pid), time.monotonic()
    child = Child("raw aiokafka", command, workdir / f"raw-{uuid.uuid4().hex[:6]}.log", env=_clean_env({}),
                  capture=True)
    try:
        out, _ = child.process.communicate(timeout=seconds + 120)
    finally:
        child.stop()
    broker2, elapsed = _cpu_seconds(broker_pid), time.monotonic() - started
    if child.process.returncode != 0:
        raise RuntimeError(f"the raw consumer exited with {child.process.returncode}:\n{child.tail()}")
    result = orjson.loads(out.splitlines()[-1])
    marks = result["progress"]
    # the steady part: from 1 s after the first message (or from the first, for a short drain)
    skip = 1.0 if marks[-1][0] > 3.0 else 0.0
    t1, c1 = next((t, c) for t, c in marks if t >= skip)
    t2, c2 = marks[-1]
    return Window("raw aiokafka", c2 - c1, t2 - t1, result["start_to_first"], exhausted=result["messages"] >= total,
                  note=f"drained the whole backlog in {marks[-1][0]:.1f} s: rate over the drain"
                  + (f" after its first {skip:.0f} s" if skip else ""),
                  cpu=result.get("cpu"), broker_cpu=None if broker1 is None or broker2 is None
                  else (broker2 - broker1) / elapsed)


# ---- producing ----------------------------------------------------------------------------------------


async def produce_records(bootstrap: str, records: Iterator[tuple[str, bytes, bytes]], label: str) -> int:
    """Send (topic, key, value) records as fast as the broker takes them; Kafka's default partitioner."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                max_batch_size=1024 * 1024, max_request_size=4 * 1024 * 1024)
    await producer.start()
    sent, started, note = 0, time.monotonic(), time.monotonic() + 5
    try:
        pending = []
        for topic, key, value in records:
            pending.append(await producer.send(topic, value, key=key))
            sent += 1
            if len(pending) >= 5_000:
                await asyncio.gather(*pending)
                pending.clear()
                if time.monotonic() >= note:
                    note = time.monotonic() + 5
                    progress(f"  {label}: {sent:,} records sent ({sent / (time.monotonic() - started):,.0f}/s)")
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


def ensure(bootstrap: str, prefix: str) -> Any:
    from monitor.stream.topics import TopicNames, ensure_topics

    names = TopicNames.of(prefix)
    asyncio.run(ensure_topics(bootstrap, names, partitions=8))
    return names


def unique_prefix(kind: str) -> str:
    return f"bench-{kind}-{uuid.uuid4().hex[:6]}."


MAX_EXPORTERS = 40  # the simulator draws unique company names from 144; past ~70 exporters it never finishes


def throughput_spec(target: int, seed: int) -> Any:
    """A network of 3-market exporters (at most MAX_EXPORTERS) whose last days, ending today, hold
    about `target` events: 30 days, or more when the exporters' cap needs them."""
    from monitor.simulation.network import NetworkSpec
    from monitor.simulation.produce import period_ending_today

    per_exporter_day = NetworkSpec(seed=seed).expected_events_per_day() / NetworkSpec().exporters
    exporters = min(MAX_EXPORTERS, max(3, math.ceil(target / (per_exporter_day * 30))))
    days = max(30, math.ceil(target / (per_exporter_day * exporters)))
    return NetworkSpec(seed=seed, exporters=exporters, markets_per_exporter=3,
                       start=period_ending_today(days), days=days)


def produce_backlog(bootstrap: str, prefix: str, spec: Any, limit: int | None) -> dict[str, Any]:
    """The simulator's records of `spec` (registrations first, its share of bad messages),
    produced with `monitor simulate`'s own producer; returns its figures."""
    from monitor.simulation.produce import SimulationPlan, produce

    ensure(bootstrap, prefix)
    last = [time.monotonic()]

    def report(stats: Any) -> None:
        if time.monotonic() - last[0] >= 5:
            last[0] = time.monotonic()
            progress(f"  {stats.describe()}")

    stats = asyncio.run(produce(SimulationPlan(spec, limit=limit), bootstrap, prefix, progress=report))
    if stats.failed:
        raise RuntimeError(f"producing the backlog failed: {stats.describe()}")
    return {"records": stats.produced, "per_topic": dict(stats.per_topic), "malformed": stats.malformed,
            "seconds": stats.elapsed_seconds, "first": stats.first_occurred_at, "last": stats.last_occurred_at}


# ---- 1. throughput ------------------------------------------------------------------------------------


def measure_consumers(bootstrap: str, broker_pid: int | None, names: Any, total: int, duration: float,
                      warm_up: float, workdir: Path, label: str, batch: int,
                      profile: Path | None = None) -> dict[str, Window]:
    """The raw consumer, the do-nothing agent (per message and in batches) and the worker, one after
    another over the same input topics."""
    inputs = names.inputs
    windows: dict[str, Window] = {}
    progress(f"{label}: (a) raw aiokafka consumer …")
    windows["raw"] = raw_consumer(bootstrap, inputs, total, duration, workdir, broker_pid)
    for key, name, size in (("noop", "do-nothing Faust agent", 0),
                            ("noop_batch", f"do-nothing agent, take_events({batch})", batch)):
        progress(f"{label}: (b) {name} …")
        agent = NothingAgent(name, bootstrap, inputs, workdir, batch=size)
        try:
            windows[key] = sustained(agent, total, duration, warm_up, broker_pid)
        finally:
            agent.stop()
    progress(f"{label}: (c) monitor worker …")
    worker = Worker("monitor worker", bootstrap, names.prefix, workdir)
    try:
        internal = (names.internal(worker.app_id),)
        window = sustained(worker, total, duration, warm_up, broker_pid,
                           snapshot=lambda: worker.offsets().committed_offsets(internal),
                           profile=None if profile is None else profile / f"{label}-worker.txt")
        window.extra["envelopes_written"] = worker.offsets().ends(internal)[internal[0]]
        window.extra["envelopes_judged"] = worker.offsets().committed(internal)
        if worker.metrics_refused:
            window.extra["counted_by"] = f"committed offsets ({worker.metrics_refused})"
        start, end = window.extra.pop("snapshots_taken")
        window.extra["events_judged"] = asyncio.run(events_in_envelopes(bootstrap, start, end))
        windows["worker"] = window
    finally:
        worker.stop()
    return windows


async def events_in_envelopes(bootstrap: str, start: dict[Any, int], end: dict[Any, int]) -> int:
    """Input events in the envelopes between two sets of committed offsets of the internal topic:
    what the judging stage finished in between (registrations, sent to every partition, left out)."""
    from aiokafka import AIOKafkaConsumer

    wanted = {tp: (start.get(tp, 0), stop) for tp, stop in end.items() if stop > start.get(tp, 0)}
    if not wanted:
        return 0
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                max_partition_fetch_bytes=8 * 1024 * 1024)
    await consumer.start()
    events = 0
    try:
        consumer.assign(list(wanted))
        for tp, (first, _) in wanted.items():
            consumer.seek(tp, first)
        remaining = set(wanted)
        async with asyncio.timeout(120):
            while remaining:
                batches = await consumer.getmany(*remaining, timeout_ms=500)
                for tp, records in batches.items():
                    first, stop = wanted[tp]
                    for record in records:
                        if first <= record.offset < stop and record.key:
                            value = record.value or b""
                            events += len(orjson.loads(value[: value.index(b"\n")])["r"])
                    if records and records[-1].offset + 1 >= stop:
                        remaining.discard(tp)
    finally:
        await consumer.stop()
    return events


# ---- 2. stock reports ------------------------------------------------------------------------------------


def stock_reports(seed: int, target_lines: int) -> tuple[list[dict[str, Any]], list[tuple[bytes, bytes, int]]]:
    """Registrations and parts-stock reports (key, value, lines) of depots with a large catalogue,
    reporting hourly, enough for about `target_lines` lines."""
    from monitor.simulation.network import TOPIC_STOCK, NetworkSpec, events, registrations
    from monitor.simulation.produce import period_ending_today

    shape = {"seed": seed, "exporters": 5, "markets_per_exporter": 3, "depots_per_market": 4,
             "catalogue_size": 1000, "outlets_per_market": 1, "tickets_per_day_per_market": 0.0,
             "stock_report_hours": 1}
    depots = shape["exporters"] * shape["markets_per_exporter"] * shape["depots_per_market"]
    days = max(2, math.ceil(target_lines / (depots * 24 * 300)))  # ~300 lines a report on average
    spec = NetworkSpec(**shape, start=period_ending_today(days), days=days)  # type: ignore[arg-type]
    now = time.time()
    reports: list[tuple[bytes, bytes, int]] = []
    for event in events(spec):
        if event["topic"] != TOPIC_STOCK:
            continue
        if datetime.fromisoformat(event["occurred_at"]).timestamp() > now:
            break
        del event["topic"]
        reports.append((event["depot_id"].encode(), orjson.dumps(event), len(event["lines"])))
    return registrations(spec), reports


# ---- 3. breach latency -----------------------------------------------------------------------------------


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def background_events(seed: int, count: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Registrations and `count` events of a 10-exporter network (their times replaced when sent)."""
    from monitor.simulation.network import NetworkSpec, events, registrations

    per_day = NetworkSpec(seed=seed, exporters=10).expected_events_per_day()
    spec = NetworkSpec(seed=seed, exporters=10, start=datetime.now(UTC).date(),
                       days=max(2, math.ceil(count * 1.1 / per_day)))
    chosen = []
    for event in events(spec):
        chosen.append(event)
        if len(chosen) >= count:
            break
    return registrations(spec), chosen


async def latency_run(bootstrap: str, names: Any, background: list[dict[str, Any]], *, rate: float, tickets: int,
                      window: float, lead: float, warm_up: float, worker: Worker, label: str,
                      seed: int, catch_up: float = 30.0) -> dict[str, Any]:
    """Background events at `rate`/s (0: none) for warm_up + window + lead + 3 s, each stamped with
    the moment it is sent; during the window, `tickets` tickets, each sent `lead` s before its
    48-hour deadline. Then up to `catch_up` s more for the breaches still missing. Returns the
    breaches seen on the alerts topic (raised_at and reading time, against the deadline)."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    from monitor.simulation.produce import KEY_FIELDS, Pacer

    rng = random.Random(f"{seed}/{label}")
    topics = {"service-tickets": names.tickets, "parts-stock": names.stock, "outlet-status": names.outlets}
    templates = [e for e in background if e["topic"] == "service-tickets" and e["type"] == "opened"]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=1024 * 1024)
    alerts = AIOKafkaConsumer(names.alerts, bootstrap_servers=bootstrap, group_id=None,
                              auto_offset_reset="latest", enable_auto_commit=False)
    await producer.start()
    await alerts.start()
    received: list[tuple[float, dict[str, Any]]] = []
    done = asyncio.Event()

    async def read_alerts() -> None:
        while not done.is_set():
            batch = await alerts.getmany(timeout_ms=100)
            now = time.time()
            for records in batch.values():
                received.extend((now, orjson.loads(r.value)) for r in records)

    def breach_of(message: dict[str, Any]) -> str | None:
        ticket_id = str(message.get("subject", "")).rsplit("#", 1)[0]
        if (ticket_id in deadlines and message["obligation"] == "response_48h" and message["severity"] == "breach"
                and message["status"] == "open"):
            return ticket_id
        return None

    reader = asyncio.create_task(read_alerts())
    await asyncio.sleep(1.0)  # the reader has its partitions and their end offsets before anything is due
    deadlines: dict[str, float] = {}
    sent = 0
    started = time.monotonic()
    window_start = started + warm_up
    ticket_times = sorted(window_start + window * (i + rng.random()) / tickets for i in range(tickets))
    end = window_start + window + lead + 3.0
    pacer = Pacer(rate) if rate else None
    counts: list[tuple[int, float, float]] = []  # (background sent, worker's input consumed, when)
    loop_start = (0.0, 0.0, math.inf)  # the worker's event-loop probes when the window starts (`loop_lag`)
    next_ticket = 0
    try:
        while (now := time.monotonic()) < end:
            while next_ticket < tickets and ticket_times[next_ticket] <= now:
                template = templates[next_ticket % len(templates)]
                ticket_id = f"T-{label}-{next_ticket:05d}"
                deadline = time.time() + lead
                ticket = {**template, "event_id": f"bench-{label}-{next_ticket:05d}", "ticket_id": ticket_id,
                          "occurred_at": _stamp(deadline - DEADLINE.total_seconds())}
                del ticket["topic"]
                deadlines[ticket_id] = deadline
                await producer.send(names.tickets, orjson.dumps(ticket), key=ticket_id.encode())
                next_ticket += 1
            if not counts and now >= window_start:
                counts.append((sent, await asyncio.to_thread(worker.consumed) or 0.0, time.monotonic()))
                loop_start = loop_lag(await asyncio.to_thread(worker.metrics) or "")
            if pacer is None:
                await asyncio.sleep(0.005)
                continue
            wait = pacer.delay(sent, now)
            if wait:
                await asyncio.sleep(wait)
                continue
            if sent >= len(background):
                raise RuntimeError("the background events ran out; make more")
            stamp_now = _stamp(time.time())
            for _ in range(25):  # the sends already due, at most 5 ms' worth at 5,000/s
                event = dict(background[sent])
                topic = event.pop("topic")
                event["occurred_at"] = stamp_now
                await producer.send(topics[topic], orjson.dumps(event), key=event[KEY_FIELDS[topic]].encode())
                sent += 1
                if pacer.delay(sent, time.monotonic()):
                    break
        counts.append((sent, await asyncio.to_thread(worker.consumed) or 0.0, time.monotonic()))
        loop_end = loop_lag(await asyncio.to_thread(worker.metrics) or "")
        sending = time.monotonic() - started
        await producer.flush()
        waited = time.monotonic()
        while time.monotonic() - waited < catch_up:  # the breaches still on their way
            await asyncio.sleep(0.5)
            if len({breach_of(m) for _, m in received} - {None}) >= tickets:
                break
        await asyncio.sleep(1.0)
    finally:
        done.set()
        await reader
        await alerts.stop()
        await producer.stop()
    breaches: list[tuple[float, float, float]] = []  # (raised - deadline, read - deadline, opened_at - deadline)
    kinds: dict[str, int] = {}
    seen: set[str] = set()
    repeated = 0
    others: list[str] = []  # breaches of tickets this run did not send
    for read_at, message in received:
        kind = f"{message['obligation']}/{message['severity']}/{message['status']}"
        kinds[kind] = kinds.get(kind, 0) + 1
        ticket_id = breach_of(message)
        if ticket_id is None:
            if kind == "response_48h/breach/open":
                others.append(str(message.get("subject")))
            continue
        if ticket_id in seen:  # the first breach message of a ticket is the one that counts
            repeated += 1
            continue
        seen.add(ticket_id)
        opened = datetime.fromisoformat(message["opened_at"]).timestamp()
        raised = datetime.fromisoformat(message["raised_at"]).timestamp()
        breaches.append((raised - opened, read_at - opened, opened - deadlines[ticket_id]))
    (sent1, consumed1, t1), (sent2, consumed2, t2) = counts[0], counts[-1]
    return {"rate": rate, "tickets": tickets, "breaches": breaches, "repeated": repeated, "others": others,
            "alert_kinds": kinds,
            "background_sent": sent,
            "background_rate": sent / sending, "window_sent": sent2 - sent1, "window_consumed": consumed2 - consumed1,
            "window_seconds": t2 - t1, "loop_probes": loop_end[0] - loop_start[0],
            "loop_late": loop_end[1] - loop_start[1], "loop_worst": loop_end[2]}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


# ---- 4. start-up -----------------------------------------------------------------------------------------


async def _create_topic(bootstrap: str, topic: str, partitions: int = 8) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


def start_up(bootstrap: str, prefix: str, workdir: Path, timeout: float = 90.0) -> dict[str, Any]:
    """Seconds from starting a worker to its first processed input message (the first envelope its
    intake writes to the internal topic) and to its first alert transition (the first message on
    the alerts topic), both watched every 20 ms on the broker."""
    from monitor.stream.topics import TopicNames

    names = TopicNames.of(prefix)
    probe = OffsetProbe(bootstrap, "-")
    app_id = f"{prefix}bench-{uuid.uuid4().hex[:6]}"
    internal = names.internal(app_id)
    watched = (internal, names.alerts)
    asyncio.run(_create_topic(bootstrap, internal))  # asking for the ends of a missing topic makes Tansu create it
    probe.ends(watched)  # clients connected before the clock starts
    worker = Worker("monitor worker (start-up)", bootstrap, prefix, workdir, app_id=app_id)
    first_event = first_alert = None
    try:
        while time.monotonic() - worker.started < timeout and first_alert is None:
            worker.check()
            ends = probe.ends(watched)
            now = time.monotonic()
            if first_event is None and ends[internal] > 0:
                first_event = now - worker.started
            if ends[names.alerts] > 0:
                first_alert = now - worker.started
            time.sleep(0.02)
        rss = worker.peak_rss_kib()
    finally:
        worker.stop()
        probe.close()
    return {"first_event": first_event, "first_alert": first_alert, "peak_rss_kib": rss}


# ---- the report ----------------------------------------------------------------------------------------


def _mib(kib: float | None) -> str:
    return "-" if kib is None else f"{kib / 1024:,.0f} MiB"


def _cores(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:6.3f}" if b else "     -"


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def print_windows(title: str, windows: dict[str, Window], unit: str, per_message: float = 1.0) -> None:
    if title:
        print(f"\n{title}")
    header = (f"  {'consumer':40s} {unit:>12s} {'msgs/s':>9s} {'window':>7s} {'to 1st':>7s} {'CPU':>5s} "
              f"{'broker':>6s} {'peak RSS':>9s}")
    print(header)
    print("  " + "-" * (len(header) - 2))
    for window in windows.values():
        note = f" ({window.note})" if window.note else ""
        print(f"  {window.name:40s} {window.rate * per_message:12,.0f} {window.rate:9,.0f} {window.seconds:6.1f}s "
              f"{window.start_to_first:6.1f}s {_cores(window.cpu):>5s} {_cores(window.broker_cpu):>6s} "
              f"{_mib(window.peak_rss_kib):>9s}{note}")


class ApacheKafka:
    """One Apache Kafka node (tests/services/kafka.py) with the embedded broker's start, stop, bootstrap and pid."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster

    @property
    def bootstrap(self) -> str:
        return str(self.cluster.bootstrap)

    @property
    def pid(self) -> int | None:
        pid: int | None = self.cluster.nodes[0].pid
        return pid

    def start(self) -> None:
        self.cluster.start()

    def stop(self) -> None:
        self.cluster.remove()


def make_broker(kind: str, workdir: Path) -> tuple[Any, str]:
    """The broker a bench measures on, not started yet, and its name: `kafka` (Apache Kafka, one
    KRaft node, from its Maven Central jars) or `embedded` (Tansu, in memory)."""
    if kind == "kafka":
        from tests.services.kafka import KafkaCluster, kafka_version

        return ApacheKafka(KafkaCluster(workdir / "kafka")), f"Apache Kafka {kafka_version()} (KRaft, one node)"
    from monitor.embedded.broker import EmbeddedBroker, free_port

    return EmbeddedBroker(port=free_port(), log_path=workdir / "broker.log"), "embedded broker Tansu (in memory)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="15 s windows and smaller backlogs: a smoke run")
    parser.add_argument("--seconds", type=float, help="length of each sustained window (default 60; 15 with --quick)")
    parser.add_argument("--events", type=int, help="input events in the throughput backlog "
                                                   "(default 1,500,000; 400,000 with --quick)")
    parser.add_argument("--tickets", type=int, help="tickets in the latency run (default 300; 100 with --quick)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--broker", choices=("embedded", "kafka"), default="embedded",
                        help="the broker to measure on: the embedded one (Tansu, default) or Apache Kafka "
                             "(KRaft, one node, started from its Maven Central jars); baselines run on the same")
    parser.add_argument("--only", default="throughput,stock,latency,startup",
                        help="comma-separated parts to run (default all): throughput, stock, latency, startup")
    parser.add_argument("--json", action="store_true", help="also write the figures to bench/out/stream.json")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs) afterwards")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="record the worker with py-spy during its throughput and stock windows (raw "
                             "collapsed stacks in DIR) and print where its time goes; the sampling costs the "
                             "worker a little")
    options = parser.parse_args()
    parts = {p.strip() for p in options.only.split(",") if p.strip()}
    duration = options.seconds or (15.0 if options.quick else 60.0)
    warm_up = 3.0 if options.quick else 5.0
    total_events = options.events or (400_000 if options.quick else 1_500_000)
    tickets = options.tickets or (100 if options.quick else 300)
    batch = 2000  # the worker's default intake batch (MONITOR_INTAKE_BATCH)

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    workdir = Path(tempfile.mkdtemp(prefix="stream-bench-"))
    if options.profile is not None:
        options.profile.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    results: dict[str, Any] = {"machine": {"cores": os.cpu_count(), "python": sys.version.split()[0]},
                               "window_seconds": duration}
    broker, broker_name = make_broker(options.broker, workdir)
    throughput: dict[str, Window] = {}
    stock: dict[str, Window] = {}
    latency: dict[str, dict[str, Any]] = {}
    starts: list[dict[str, Any]] = []
    backlog: dict[str, Any] = {}
    stock_shape: dict[str, Any] = {}
    failures: list[str] = []
    try:
        broker.start()
        progress(f"{broker_name} on {broker.bootstrap} (pid {broker.pid}); work directory {workdir}")
        bootstrap = broker.bootstrap

        if "throughput" in parts:
            spec = throughput_spec(total_events, options.seed)
            prefix = unique_prefix("throughput")
            progress(f"throughput: producing about {total_events:,} events ({spec.exporters} exporters x "
                     f"{spec.markets_per_exporter} markets, {spec.days} days to today) …")
            backlog = produce_backlog(bootstrap, prefix, spec, limit=total_events)
            backlog["exporters"] = spec.exporters
            progress(f"throughput: {backlog['records']:,} records in {backlog['seconds']:.0f} s")
            try:
                throughput = measure_consumers(bootstrap, broker.pid, ensure(bootstrap, prefix), backlog["records"],
                                               duration, warm_up, workdir, "throughput", batch, options.profile)
            except RuntimeError as exc:
                failures.append(f"throughput: {exc}")

        if "stock" in parts:
            stock_window = min(duration, 30.0)  # the reports are large: a shorter window keeps the backlog sane
            target_lines = int(TARGET_LINES_PER_SECOND * 2 * (stock_window + warm_up + 8))
            progress(f"stock: generating parts-stock reports (about {target_lines:,} lines) …")
            registry, reports = stock_reports(options.seed + 1, target_lines)
            lines = [n for _, _, n in reports]
            stock_shape = {"reports": len(reports), "lines": sum(lines), "mean_lines": statistics.fmean(lines),
                           "min_lines": min(lines), "median_lines": statistics.median(lines),
                           "max_lines": max(lines), "mean_bytes": statistics.fmean(len(v) for _, v, _ in reports)}
            prefix = unique_prefix("stock")
            names = ensure(bootstrap, prefix)
            records = [(names.registry, r["exporter_id"].encode(), orjson.dumps(r)) for r in registry]
            records += [(names.stock, key, value) for key, value, _ in reports]
            progress(f"stock: producing {len(reports):,} reports, {sum(lines):,} lines …")
            asyncio.run(produce_records(bootstrap, iter(records), "stock"))
            del records
            try:
                stock = measure_consumers(bootstrap, broker.pid, names, len(registry) + len(reports), stock_window,
                                          warm_up, workdir, "stock", batch, options.profile)
            except RuntimeError as exc:
                failures.append(f"stock: {exc}")

        if "latency" in parts:
            count = int(BACKGROUND_RATE * (warm_up + duration + LEAD_SECONDS + 10) * 1.1)
            progress(f"latency: generating {count:,} background events …")
            registry, background = background_events(options.seed + 2, count)
            prefix = unique_prefix("latency")
            names = ensure(bootstrap, prefix)
            asyncio.run(produce_records(
                bootstrap, iter([(names.registry, r["exporter_id"].encode(), orjson.dumps(r)) for r in registry]),
                "registry"))
            worker = Worker("monitor worker (latency)", bootstrap, prefix, workdir)
            try:
                while not worker.consumed():  # ready: it has read the registrations
                    worker.check()
                    time.sleep(0.1)
                    if time.monotonic() - worker.started > 120:
                        raise RuntimeError(f"the latency worker read nothing in 120 s:\n{worker.tail()}")
                time.sleep(2.0)
                idle_window = min(duration, 20.0)
                plans = [("idle", IDLE_RATE, max(20, tickets // 4), idle_window),
                         ("load", float(BACKGROUND_RATE), tickets, duration)]
                latency = {}
                for label, rate, count_tickets, window in plans:
                    progress(f"latency: background {rate:,.0f} events/s, {count_tickets} tickets over {window:.0f} s, "
                             f"each sent {LEAD_SECONDS:.0f} s before its deadline …")
                    spy = None
                    if options.profile is not None and rate == BACKGROUND_RATE:
                        spy = Child("py-spy of the latency worker", [
                            str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(worker.pid),
                            "--duration", str(round(warm_up + window)), "--rate", "100", "--format", "raw",
                            "--nolineno", "--gil", "--output", str(options.profile / "latency-worker.txt")],
                            options.profile / "latency-worker.log")
                    cpu1, broker1, t1 = _cpu_seconds(worker.pid), _cpu_seconds(broker.pid), time.monotonic()
                    run = asyncio.run(latency_run(bootstrap, names, background, rate=rate, tickets=count_tickets,
                                                  window=window, lead=LEAD_SECONDS, warm_up=warm_up, worker=worker,
                                                  label=label, seed=options.seed))
                    cpu2, broker2, t2 = _cpu_seconds(worker.pid), _cpu_seconds(broker.pid), time.monotonic()
                    run["cpu"] = (cpu2 - cpu1) / (t2 - t1) if cpu1 is not None and cpu2 is not None else None
                    run["broker_cpu"] = ((broker2 - broker1) / (t2 - t1)
                                         if broker1 is not None and broker2 is not None else None)
                    run["clock_behind_s"] = worker.figures()["clock_behind"]
                    run["peak_rss_kib"] = worker.peak_rss_kib()
                    latency[label] = run
                    if spy is not None:
                        spy.stop()
                worker.check()
            except RuntimeError as exc:
                failures.append(f"latency: {exc}")
            finally:
                worker.stop()

        if "startup" in parts:
            spec = throughput_spec(200_000, options.seed + 3)
            for attempt in range(3):
                prefix = unique_prefix(f"start{attempt}")
                progress(f"start-up {attempt + 1}/3: producing 20,000 events, then starting a worker …")
                produce_backlog(bootstrap, prefix, spec, limit=20_000)
                try:
                    starts.append(start_up(bootstrap, prefix, workdir))
                except RuntimeError as exc:
                    failures.append(f"start-up: {exc}")
                    break
    except KeyboardInterrupt:
        progress("interrupted: stopping what was started …")
        Child.stop_all()
        broker.stop()
        return 130
    finally:
        Child.stop_all()
        broker.stop()
        load_after = os.getloadavg()[0]

    # ---- the table ----
    print(f"\nmachine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, load average {load_before:.2f} "
          f"before the run, {load_after:.2f} after; {broker_name}; windows of {duration:.0f} s "
          f"after a {warm_up:.0f} s warm-up. CPU = cores used by the process and its children (1.00 = one "
          f"core), broker = the broker's, over the window; peak RSS adds up the process's and its children's.")

    if throughput:
        per = backlog["per_topic"]
        print(f"\n1. input events/s per worker, sustained: {backlog['records']:,} records produced beforehand "
              f"({backlog['exporters']} exporters x 3 markets, {backlog['first']:%Y-%m-%d} to "
              f"{backlog['last']:%Y-%m-%d}; "
              + ", ".join(f"{k} {v:,}" for k, v in per.items()) + f"; {backlog['malformed']:,} bad)\n")
        print_windows("", throughput, "events/s")
        w, noop = throughput.get("worker"), throughput.get("noop")
        if w is not None:
            x = w.extra
            behind = (f"; its clock {x['clock_behind_s']:,.0f} s behind the wall at the end"
                      if math.isfinite(x["clock_behind_s"]) else "")
            print(f"  worker in the window: {x['transitions']:,.0f} alert transitions published, "
                  f"{x['rejected']:,.0f} messages dead-lettered, {x['snapshots']:,.0f} snapshots{behind}; "
                  f"judging stage at the end: {x['envelopes_judged']:,} of {x['envelopes_written']:,} "
                  "envelopes committed")
            print(f"  worker's judging stage finished {x['events_judged']:,} input events in the window: "
                  f"{x['events_judged'] / w.seconds:,.0f} events/s (what the worker sustains end to end is the "
                  "lower of this and its intake rate)")
            if "counted_by" in x:
                print(f"  worker's input messages counted by its group's {x['counted_by']}")
        print("  ratios (same messages, same run):")
        raw = throughput.get("raw")
        if w is not None and noop is not None:
            print(f"    worker / do-nothing agent          {_ratio(w.rate, noop.rate)}  (target >= "
                  f"{TARGET_RATIO_TO_NOOP}: {_verdict(noop.rate > 0 and w.rate / noop.rate >= TARGET_RATIO_TO_NOOP)})")
        if w is not None and "noop_batch" in throughput:
            print(f"    worker / do-nothing agent, batches {_ratio(w.rate, throughput['noop_batch'].rate)}")
        if noop is not None and raw is not None:
            print(f"    do-nothing agent / raw aiokafka    {_ratio(noop.rate, raw.rate)}")
            if "noop_batch" in throughput:
                print(f"    batched agent / raw aiokafka       {_ratio(throughput['noop_batch'].rate, raw.rate)}")
        if w is not None and raw is not None:
            print(f"    worker / raw aiokafka              {_ratio(w.rate, raw.rate)}")

    if stock:
        s = stock_shape
        print(f"\n2. parts-stock report lines/s: {s['reports']:,} reports, {s['lines']:,} lines (per report min "
              f"{s['min_lines']}, median {s['median_lines']:.0f}, mean {s['mean_lines']:.0f}, max {s['max_lines']}; "
              f"{s['mean_bytes'] / 1024:.0f} KiB on average)\n")
        print_windows("", stock, "lines/s", per_message=s["mean_lines"])
        w = stock.get("worker")
        if w is not None:
            x = w.extra
            print(f"  worker in the window: {x['transitions']:,.0f} alert transitions, {x['snapshots']:,.0f} "
                  f"snapshots; judging stage at the end: {x['envelopes_judged']:,} of "
                  f"{x['envelopes_written']:,} envelopes committed; it finished {x['events_judged']:,} reports "
                  f"in the window: {x['events_judged'] / w.seconds * s['mean_lines']:,.0f} lines/s")
            if "noop" in stock and "raw" in stock:
                print(f"  ratios: worker / do-nothing agent {_ratio(w.rate, stock['noop'].rate).strip()}, "
                      f"worker / batched agent {_ratio(w.rate, stock['noop_batch'].rate).strip()}, "
                      f"do-nothing / raw {_ratio(stock['noop'].rate, stock['raw'].rate).strip()}")

    if latency:
        print(f"\n3. breach alert latency after the deadline (tickets sent {LEAD_SECONDS:.0f} s before their 48-hour "
              "deadline; seconds after the deadline)")
        header = (f"  {'background load':26s} {'seen':>8s} {'raised_at: p50':>14s} {'p99':>7s} {'max':>7s} "
                  f"{'read: p50':>9s} {'p99':>7s} {'max':>7s} {'kept up (window)':>17s} {'CPU':>5s} {'broker':>6s}")
        print(header)
        print("  " + "-" * (len(header) - 2))
        for run in latency.values():
            load = (f"{run['background_rate']:,.0f} events/s" + (" (baseline)" if run["rate"] == IDLE_RATE else ""))
            breaches = run["breaches"]
            kept = (f"{run['window_consumed'] / run['window_sent']:.0%} of sent" if run["window_sent"] else "-")
            if breaches:
                raised, read = [b[0] for b in breaches], [b[1] for b in breaches]
                print(f"  {load:26s} {len(breaches):>3d}/{run['tickets']:<4d} {statistics.median(raised):14.3f} "
                      f"{percentile(raised, 0.99):7.3f} {max(raised):7.3f} {statistics.median(read):9.3f} "
                      f"{percentile(read, 0.99):7.3f} {max(read):7.3f} {kept:>17s} {_cores(run['cpu']):>5s} "
                      f"{_cores(run['broker_cpu']):>6s}")
            else:
                print(f"  {load:26s}   0/{run['tickets']:<4d} no breach of these tickets was seen")
            if run.get("loop_probes"):
                print(f"  {'':26s} event loops: {run['loop_late']:,.0f} of {run['loop_probes']:,.0f} probes in the "
                      f"window (every 50 ms, both stages) ran more than 0.1 s late; the worst so far ≤ "
                      f"{run['loop_worst']:g} s")
            off = [b[2] for b in breaches if abs(b[2]) > 0.001]
            if off:
                print(f"  {'':26s} {len(off)} breaches with opened_at other than the deadline sent")
            if run["others"]:
                print(f"  {'':26s} {len(run['others'])} breach-open messages of tickets this run did not send: "
                      + ", ".join(run["others"][:5]) + (" …" if len(run["others"]) > 5 else ""))
            if run["repeated"]:
                print(f"  {'':26s} {run['repeated']} more breach-open messages for tickets already breached "
                      "(the same transition published again)")
        loaded = latency.get("load")
        if loaded is not None:
            print(f"  under load: {loaded['background_sent']:,} background events sent; in the window the worker "
                  f"consumed {loaded['window_consumed']:,.0f} input messages of the {loaded['window_sent']:,} sent "
                  f"({loaded['window_consumed'] / loaded['window_seconds']:,.0f}/s); peak RSS "
                  f"{_mib(loaded['peak_rss_kib'])}")
            print("  alert messages seen under load: "
                  + ", ".join(f"{k} {v:,}" for k, v in sorted(loaded["alert_kinds"].items())))

    if starts:
        events = [s["first_event"] for s in starts if s["first_event"] is not None]
        alerts = [s["first_alert"] for s in starts if s["first_alert"] is not None]
        print("\n4. worker start (process start) to first processed event, 20,000 events waiting, "
              "a fresh group each time")
        print("  first consumed event: " + ", ".join(
            "-" if s["first_event"] is None else f"{s['first_event']:.2f} s" for s in starts)
            + (f"; median {statistics.median(events):.2f} s" if events else ""))
        baselines = [w for w in (throughput.get("noop"), throughput.get("raw")) if w is not None]
        if baselines:
            print("  baselines of part 1, start to first message (same broker and group settings): "
                  + ", ".join(f"{w.name} {w.start_to_first:.2f} s" for w in baselines))
        print("  first alert transition: " + ", ".join(
            "-" if s["first_alert"] is None else f"{s['first_alert']:.2f} s" for s in starts)
            + (f"; median {statistics.median(alerts):.2f} s" if alerts else ""))

    print("\ntargets (ARCHITECTURE.md)")
    if throughput.get("worker"):
        w = throughput["worker"]
        judged = w.extra["events_judged"] / w.seconds
        sustained_rate = min(w.rate, judged)
        print(f"  >= {TARGET_EVENTS_PER_SECOND:,} input events/s per worker, sustained: intake {w.rate:,.0f}/s, "
              f"judged {judged:,.0f}/s over {w.seconds:.0f} s: "
              f"{_verdict(sustained_rate >= TARGET_EVENTS_PER_SECOND and not w.exhausted)}")
    if stock.get("worker"):
        w = stock["worker"]
        rate = w.rate * stock_shape["mean_lines"]
        judged = w.extra["events_judged"] / w.seconds * stock_shape["mean_lines"]
        print(f"  >= {TARGET_LINES_PER_SECOND:,} part lines/s: intake {rate:,.0f}/s, judged {judged:,.0f}/s: "
              f"{_verdict(min(rate, judged) >= TARGET_LINES_PER_SECOND)}")
    if latency.get("load") and latency["load"]["breaches"]:
        loaded = latency["load"]
        p99 = percentile([b[1] for b in loaded["breaches"]], 0.99)
        seen = len(loaded["breaches"]) == loaded["tickets"]
        print(f"  breach published <= {TARGET_BREACH_P99_SECONDS:.0f} s after the deadline (p99, read from the topic): "
              f"{p99:.3f} s{'' if seen else ' (not every breach seen)'}: "
              f"{_verdict(p99 <= TARGET_BREACH_P99_SECONDS and seen)}")
    if starts and all(s["first_event"] is not None for s in starts):
        median = statistics.median(s["first_event"] for s in starts)
        print(f"  start to processing <= {TARGET_START_SECONDS:.0f} s: median {median:.2f} s: "
              f"{_verdict(median <= TARGET_START_SECONDS)}")
    peaks = [w.peak_rss_kib for w in (throughput.get("worker"), stock.get("worker")) if w and w.peak_rss_kib]
    if latency.get("load") and latency["load"].get("peak_rss_kib"):
        peaks.append(latency["load"]["peak_rss_kib"])
    if peaks:
        print(f"  worker peak RSS (VmHWM): largest {_mib(max(peaks))} (throughput, stock, latency runs: "
              + ", ".join(_mib(p) for p in peaks) + ")")
    if options.profile is not None:
        from stream_profile import report

        for label, what in (("throughput", "the throughput window"), ("stock", "the stock window"),
                            ("latency", f"the latency run at {BACKGROUND_RATE:,} events/s")):
            path = options.profile / f"{label}-worker.txt"
            if path.exists():
                print(f"\nwhere the worker's time went in {what} (py-spy, samples holding the GIL, so "
                      f"Python CPU time of all its threads; {path}):")
                print("\n".join(report(path)))
    for failure in failures:
        print(f"\nNOT MEASURED: {failure}")

    if options.json:
        results.update({
            "throughput": {k: {**asdict(v), "rate": v.rate} for k, v in throughput.items()},
            "backlog": {k: str(v) if isinstance(v, datetime) else v for k, v in backlog.items()},
            "stock": {k: {**asdict(v), "rate": v.rate, "lines_per_second": v.rate * stock_shape["mean_lines"]}
                      for k, v in stock.items()},
            "stock_shape": stock_shape, "latency": latency, "startup": starts, "failures": failures,
        })
        out = REPO / "bench" / "out" / "stream.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
        print(f"\nwrote {out}")
    if options.keep:
        print(f"\nkept {workdir}")
    else:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))  # run from anywhere without installing the package
    sys.exit(main())
