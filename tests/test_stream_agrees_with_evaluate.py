"""Stream and batch agree: the same events through `monitor evaluate` and through a worker on the
real broker give the same figures and the same alerts with the same final status (retracted ones
aside), for the same "now" — whether the events are produced in event-time order or shuffled."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest

from tests.streaming import (
    EXAMPLE_EVENTS,
    WorkerProcess,
    evaluate_json,
    final_alerts,
    produce,
    read_topic,
    records_of_lines,
    unique_names,
)


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    return evaluate_json([EXAMPLE_EVENTS])


@pytest.mark.parametrize("order", ["event-time", "shuffled"])
def test_worker_publishes_what_evaluate_computes(order: str, kafka_bootstrap: str, tmp_path: Path,
                                                 expected: dict[str, Any]) -> None:
    lines = EXAMPLE_EVENTS.read_bytes().splitlines()
    if order == "shuffled":
        random.Random(20261124).shuffle(lines)
    names = unique_names()
    records = records_of_lines(lines, names)
    wanted = {a["alert_id"]: a["status"] for a in expected["alerts"]}
    figures = {(f["exporter_id"], f["market"]): f for f in expected["figures"]}
    networks = {e["exporter_id"]: e["network_size"] for e in expected["exporters"]}

    with WorkerProcess(kafka_bootstrap, names, tmp_path, env={"MONITOR_AS_OF": expected["as_of"]}) as worker:
        asyncio.run(produce(kafka_bootstrap, records))

        def settled(messages: list[dict[str, Any]]) -> bool:
            standing = {k: m["status"] for k, m in final_alerts(messages).items() if m["status"] != "retracted"}
            return standing == wanted

        alerts = asyncio.run(read_topic(kafka_bootstrap, names.alerts, until=settled, idle=3.0, timeout=90))
        snapshots = asyncio.run(read_topic(kafka_bootstrap, names.compliance, idle=2.0))
        dead = asyncio.run(read_topic(kafka_bootstrap, names.deadletter, idle=1.0))
        assert worker.process is not None and worker.process.poll() is None, worker.tail()

    latest = final_alerts(alerts)
    standing = {k: m for k, m in latest.items() if m["status"] != "retracted"}
    assert {k: m["status"] for k, m in standing.items()} == wanted
    by_id = {a["alert_id"]: a for a in expected["alerts"]}
    for alert_id, message in standing.items():
        batch = by_id[alert_id]
        for name in ("exporter_id", "market", "obligation", "severity", "subject", "opened_at", "resolved_at",
                     "policy_version", "renewal_relevant", "accountable", "evidence"):
            assert message[name] == batch[name], (alert_id, name)
        assert message["raised_at"] is not None

    final = {(s["exporter_id"], s["market"]): s for s in snapshots}
    assert final.keys() == figures.keys()
    for key, snapshot in final.items():
        for part in ("response_48h", "parts_inventory", "emergency_coverage"):
            assert snapshot[part] == figures[key][part], (key, part)
        assert snapshot["network_size"] == networks[key[0]]
        assert snapshot["as_of"] == expected["as_of"]

    # the four bad lines of the example are dead-lettered, whole, and nothing else is
    assert len(dead) == len(expected["rejected"]) == 4
    produced = {value.decode() for _, _, value in records}
    for document in dead:
        assert document["value"] in produced and document["reason"]
        assert document["topic"].startswith(names.prefix) and document["offset"] is not None
