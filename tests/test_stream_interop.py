"""Another Kafka client speaks to the monitor: a ticket produced through librdkafka (the
confluent-kafka client, not aiokafka) is judged, and the alerts topic reads back through
librdkafka as the JSON the contract promises, keyed by the same alert_id.

(Debian's kcat uses librdkafka 2.0.2, which cannot read the embedded broker's handshake; see
tests/test_embedded_broker.py. Against Apache Kafka it works as any client does.)
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, Producer, libversion

from tests.streaming import WorkerProcess, read_topic, unique_names

GREY_VIN = "WVWZZZ1JZXW000001"  # WMI WVW: no brand of EXP-001, so the ticket is an authorisation alert
NEVER = 60.0


def _read_all(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"interop-{time.time_ns()}",
                         "auto.offset.reset": "earliest", "enable.partition.eof": True,
                         "session.timeout.ms": 6000})
    consumer.subscribe([topic])
    records: list[tuple[bytes | None, bytes]] = []
    ended: set[int] = set()
    deadline = time.monotonic() + NEVER
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None and error.code() == KafkaError._PARTITION_EOF:
                ended.add(message.partition())
                assignment = consumer.assignment()
                if assignment and ended >= {tp.partition for tp in assignment}:
                    break
                continue
            assert error is None, error
            records.append((message.key(), message.value()))
    finally:
        consumer.close()
    return records


def test_librdkafka_produces_a_ticket_and_reads_its_alert(kafka_bootstrap: str, tmp_path: Path) -> None:
    print(f"librdkafka {libversion()[0]}")
    names = unique_names()
    ticket = {"event_id": "k-1", "type": "opened", "ticket_id": "K-1", "exporter_id": "EXP-001", "market": "KE",
              "vin": GREY_VIN, "occurred_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat()}
    with WorkerProcess(kafka_bootstrap, names, tmp_path) as worker:
        worker.wait_ready()
        producer = Producer({"bootstrap.servers": kafka_bootstrap})
        producer.produce(names.tickets, key=b"K-1", value=orjson.dumps(ticket))
        assert producer.flush(NEVER) == 0, "librdkafka delivered the ticket"

        def raised(messages: list[dict[str, Any]]) -> bool:
            return any(m["obligation"] == "authorisation" and m["subject"] == f"K-1/{GREY_VIN}" for m in messages)

        alerts = asyncio.run(read_topic(kafka_bootstrap, names.alerts, until=raised, idle=1.0, timeout=NEVER))
        assert raised(alerts), f"no authorisation alert for the kcat ticket: {alerts}\n{worker.tail()}"
        dead = asyncio.run(read_topic(kafka_bootstrap, names.deadletter, idle=0.5, timeout=5))
        assert worker.process is not None and worker.process.poll() is None, worker.tail()

    assert dead == [], "the librdkafka-produced message is a valid event"
    [alert] = [m for m in alerts if m["obligation"] == "authorisation" and m["subject"] == f"K-1/{GREY_VIN}"]
    assert alert["exporter_id"] == "EXP-001" and alert["market"] == "KE" and alert["status"] == "open"
    assert alert["evidence"]["ticket_id"] == "K-1" and alert["evidence"]["first_event"]["event_id"] == "k-1"

    # the whole alerts topic, read through librdkafka: each message keyed by its alert_id
    started = time.monotonic()
    read_back = []
    for key, value in _read_all(kafka_bootstrap, names.alerts):
        message = orjson.loads(value)
        assert key == message["alert_id"].encode(), "each alert is keyed by its alert_id"
        read_back.append(message)
    print(f"librdkafka read {len(read_back)} alert messages in {time.monotonic() - started:.1f} s")
    assert {m["alert_id"] for m in alerts} <= {m["alert_id"] for m in read_back}, "it sees what aiokafka saw"
    assert alert in read_back, "it reads the alert whole, with the same alert_id"
