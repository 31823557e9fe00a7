"""A backlog waiting on the topics before the worker starts: the consumer's first fetches bring
each partition's first megabyte, days of event time on a sparse topic and hours on a busy one.
The worker judges the state obligations as `evaluate` does, with a horizon (24 h) far shorter
than the history: none of its events is reported as too old to re-judge."""

from __future__ import annotations

import asyncio
import json
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from monitor.batch.evaluate import evaluate_records
from monitor.contracts.registry import ExporterRegistration
from monitor.obligations.timebase import to_datetime, to_micros
from monitor.simulation.network import NetworkSpec, events, registrations
from monitor.stream.topics import ensure_topics
from tests.builders import utc
from tests.streaming import KEY_FIELD, Record, WorkerProcess, final_alerts, produce, read_topic, unique_names

SPEC = NetworkSpec(seed=11, exporters=4, markets_per_exporter=2, outlets_per_market=4, catalogue_size=8,
                   tickets_per_day_per_market=40.0, heartbeat_minutes=240, stock_report_hours=24,
                   start=date(2026, 3, 1), days=30)


def _records(documents: list[dict[str, Any]], prefix: str) -> list[Record]:
    records = []
    for document in documents:
        body = {k: v for k, v in document.items() if k != "topic"}
        topic = document["topic"]
        records.append((prefix + topic, str(body[KEY_FIELD[topic]]).encode(), orjson.dumps(body)))
    return records


def test_a_backlog_spread_over_partitions_is_judged_as_evaluate_judges_it(kafka_bootstrap: str,
                                                                           tmp_path: Path) -> None:
    names = unique_names()
    registry = registrations(SPEC)
    history = sorted(events(SPEC), key=lambda r: utc(r["occurred_at"]))
    as_of = max(to_micros(utc(r["occurred_at"])) for r in history)
    expected = evaluate_records(history, registry=[ExporterRegistration.model_validate(r) for r in registry],
                                as_of=to_datetime(as_of))
    wanted = {a["alert_id"]: a["status"] for a in expected["alerts"]}
    registry_file = tmp_path / "registry.json"
    registry_file.write_text(json.dumps(registry))
    asyncio.run(ensure_topics(kafka_bootstrap, names))
    asyncio.run(produce(kafka_bootstrap, _records(history, names.prefix)))  # all of it before the worker starts

    env = {"MONITOR_AS_OF": expected["as_of"], "MONITOR_HORIZON_HOURS": "24", "MONITOR_REGISTRY": str(registry_file)}
    with WorkerProcess(kafka_bootstrap, names, tmp_path, env=env) as worker:
        def settled(messages: list[dict[str, Any]]) -> bool:
            standing = {k: m["status"] for k, m in final_alerts(messages).items() if m["status"] != "retracted"}
            return standing == wanted

        alerts = asyncio.run(read_topic(kafka_bootstrap, names.alerts, until=settled, idle=3.0, timeout=150))
        assert worker.process is not None and worker.process.poll() is None, worker.tail()
    log = worker.log_path.read_text(errors="replace")

    too_old = [line for line in log.splitlines() if "older than the re-judging horizon" in line]
    print(f"\n{len(history):,} events over {SPEC.days} days, horizon 24 h: {len(wanted):,} alerts standing, "
          f"{len(too_old)} events reported too old to re-judge")
    assert too_old == [], too_old[:5]
    standing = {k: m["status"] for k, m in final_alerts(alerts).items() if m["status"] != "retracted"}
    assert standing == wanted
