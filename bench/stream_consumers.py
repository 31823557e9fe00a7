"""The baselines of bench/stream_bench.py, each run as a process of its own.

    python bench/stream_consumers.py raw   --bootstrap H:P --group G --expect N --seconds S TOPIC…
    python bench/stream_consumers.py faust --bootstrap H:P --group G --web-port P [--batch N] TOPIC…

`raw`: a plain aiokafka consumer in a consumer group that iterates the topics and counts;
prints one JSON line (messages, first and last message times, and its progress) when it has
read `--expect` messages or `--seconds` have passed since the first one.

`faust`: a Faust app with one agent that does nothing with the messages of the topics (raw
key and value serializers), configured as `monitor worker` configures its app (the same
consumer-group timeouts, commit interval, offset reset, store, partitions), so that the
only difference from the worker is what the agent does. It counts what it iterates and
serves the count at GET /count on `--web-port`, as the worker serves /metrics. With
`--batch N` it iterates as the worker's intake does, `stream.take_events(N, within=…)`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


async def _raw(bootstrap: str, topics: list[str], group: str, expect: int, seconds: float) -> dict[str, Any]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=True)
    started = time.monotonic()
    await consumer.start()
    count = 0
    first = last = cpu_first = 0.0
    progress: list[tuple[float, int]] = []  # (seconds since the first message, messages), every 0.25 s
    next_mark = 0.0
    try:
        async for _message in consumer:
            now = time.monotonic()
            if count == 0:
                first = next_mark = now
                cpu_first = time.process_time()
            count += 1
            last = now
            if now >= next_mark:
                progress.append((now - first, count))
                next_mark = now + 0.25
            if count >= expect or now - first >= seconds:
                break
    finally:
        await consumer.stop()
    cpu = time.process_time() - cpu_first
    progress.append((last - first, count))
    return {"messages": count, "start_to_first": first - started, "seconds": last - first, "progress": progress,
            "cpu": cpu / (last - first) if last > first else None}


def _faust(bootstrap: str, topics: list[str], group: str, web_port: int, batch: int) -> None:
    import faust

    from monitor.stream.settings import WorkerSettings

    worker_defaults = WorkerSettings()  # the worker's own defaults: the same group timeouts
    app = faust.App(
        group,
        broker=[f"kafka://{server.strip()}" for server in bootstrap.split(",")],
        store="memory://",
        topic_partitions=worker_defaults.partitions,
        topic_replication_factor=1,
        web_host="127.0.0.1",
        web_port=web_port,
        web_bind="127.0.0.1",
        broker_session_timeout=worker_defaults.session_timeout_seconds,
        broker_heartbeat_interval=worker_defaults.heartbeat_seconds,
        broker_rebalance_timeout=worker_defaults.rebalance_timeout_seconds,
        broker_commit_interval=1.0,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
    )
    inputs = app.topic(*topics, key_serializer="raw", value_serializer="raw")
    counted = {"messages": 0, "first": 0.0, "last": 0.0}  # wall-clock times of the first and last message

    async def per_message(stream: Any) -> None:
        async for _value in stream:
            counted["last"] = time.time()
            if not counted["messages"]:
                counted["first"] = counted["last"]
            counted["messages"] += 1

    async def in_batches(stream: Any) -> None:
        async for events in stream.take_events(batch, within=worker_defaults.intake_linger_seconds):
            counted["last"] = time.time()
            if not counted["messages"]:
                counted["first"] = counted["last"]
            counted["messages"] += len(events)

    app.agent(inputs, name="nothing")(in_batches if batch else per_message)

    async def count_page(web: Any, request: Any) -> Any:
        return web.json(counted)

    app.page("/count")(count_page)
    faust.Worker(app, loglevel="warning").execute_from_commandline()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=("raw", "faust"))
    parser.add_argument("topics", nargs="+")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--expect", type=int, default=0, help="raw: stop after this many messages")
    parser.add_argument("--seconds", type=float, default=60.0, help="raw: stop this long after the first message")
    parser.add_argument("--web-port", type=int, default=0, help="faust: where GET /count answers")
    parser.add_argument("--batch", type=int, default=0, help="faust: take_events batches of this size (0: one "
                                                             "message at a time)")
    options = parser.parse_args()
    if options.kind == "raw":
        result = asyncio.run(_raw(options.bootstrap, options.topics, options.group,
                                  options.expect or sys.maxsize, options.seconds))
        print(json.dumps(result), flush=True)
    else:
        _faust(options.bootstrap, options.topics, options.group, options.web_port, options.batch)
    return 0


if __name__ == "__main__":
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    sys.exit(main())
