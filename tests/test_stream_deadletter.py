"""Nothing is lost (CONTRACT.md, RejectedMessage): every kind of bad input message, interleaved with
valid events on all four input topics, lands on the dead-letter topic exactly once, whole (its
original bytes, base64 when they are not UTF-8), with the topic, partition, offset and key it was
read at and a reason naming the problem; the worker keeps running, and every valid event around
the bad ones still has its effect."""

from __future__ import annotations

import asyncio
import base64
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from monitor.stream.topics import TopicNames
from tests.streaming import WorkerProcess, final_alerts, unique_names

GREY_VIN = "WVWZZZ1JZXW000001"  # WMI WVW: no brand of EXP-001, so each ticket is an authorisation alert
OWN_VIN = "LRNCE4CB5N0012345"  # WMI LRN: EXP-001's own brand
NEWCOMER = "EXP-900"  # registered on the registry topic by the test itself
NEVER = 60.0


@dataclass
class Sent:
    """One message as produced, and where the broker put it."""

    name: str
    topic: str
    key: bytes
    value: bytes
    partition: int = -1
    offset: int = -1
    reason_names: tuple[str, ...] = ()  # for a bad message: words its reason must contain


def at(delta: timedelta) -> str:
    return (datetime.now(UTC) - delta).isoformat()


def grey_ticket(number: int) -> dict[str, Any]:
    return {"event_id": f"g-{number}", "type": "opened", "ticket_id": f"G-{number}", "exporter_id": "EXP-001",
            "market": "KE", "vin": GREY_VIN, "occurred_at": at(timedelta(hours=1, minutes=number))}


def newcomer_registration() -> dict[str, Any]:
    return {"exporter_id": NEWCOMER, "name": "Newcomer Motors", "role": "automaker", "category": "II",
            "authorised_by": [], "brands": [{"name": "Newbrand", "wmi": ["LNW"]}],
            "licence": {"number": "EVX-2026-00900", "valid_from": "2026-01-01", "valid_to": "2099-12-31"},
            "major_markets": ["TZ"], "common_parts": {"*": ["NW-1", "NW-2", "NW-3", "NW-4", "NW-5"]}}


def oversized_report() -> bytes:
    """A ~900 KB parts-stock report whose very last line has a negative quantity."""
    lines = [{"part_number": f"LRN-BULK-{i:06d}", "quantity_on_hand": 3} for i in range(16_400)]
    lines[-1]["quantity_on_hand"] = -1
    return orjson.dumps({"event_id": "s-big", "exporter_id": "EXP-001", "market": "KE", "depot_id": "DEP-KE-BIG",
                         "lines": lines, "occurred_at": at(timedelta(minutes=30))})


def messages(names: TopicNames) -> list[Sent]:
    """Valid and bad messages, interleaved across the input topics."""
    ticket = {"event_id": "b-0", "type": "opened", "ticket_id": "B-0", "exporter_id": "EXP-001", "market": "KE",
              "vin": OWN_VIN, "occurred_at": at(timedelta(hours=2))}
    stock = {"event_id": "s-1", "exporter_id": NEWCOMER, "market": "TZ", "depot_id": "DEP-TZ-1",
             "lines": [{"part_number": "NW-1", "quantity_on_hand": 4}, {"part_number": "NW-2", "quantity_on_hand": 1},
                       {"part_number": "NW-3", "quantity_on_hand": 0}],
             "occurred_at": at(timedelta(minutes=40))}
    outlet = {"event_id": "o-1", "exporter_id": NEWCOMER, "outlet_id": "OUT-TZ-1", "market": "TZ",
              "status": "operational", "capabilities": ["maintenance", "emergency_rescue_24h"],
              "occurred_at": at(timedelta(minutes=20))}
    registration = newcomer_registration()

    def valid(name: str, topic: str, key: str, document: dict[str, Any]) -> Sent:
        return Sent(name, topic, key.encode(), orjson.dumps(document))

    def bad(name: str, topic: str, key: str, value: bytes, *reason_names: str) -> Sent:
        return Sent(name, topic, key.encode(), value, reason_names=reason_names)

    no_vin = {k: v for k, v in ticket.items() if k != "vin"} | {"event_id": "b-1", "ticket_id": "B-1"}
    naive = ticket | {"event_id": "b-2", "ticket_id": "B-2", "occurred_at": "2026-11-01T10:00:00"}
    bad_vin = ticket | {"event_id": "b-3", "ticket_id": "B-3", "vin": "LRNIO4CB5N0Q12345"}
    three = stock | {"event_id": "b-4", "lines": [{"part_number": "NW-4", "quantity_on_hand": "three"}]}
    unknown_market = outlet | {"event_id": "b-5", "outlet_id": "OUT-XX-1", "market": "XX"}
    bad_registration = registration | {"exporter_id": "EXP-901", "role": "importer"}
    return [
        valid("registration", names.registry, NEWCOMER, registration),
        bad("not JSON", names.tickets, "B-junk", b'{"event_id": "x", "type": opened', "JSON"),
        valid("grey ticket 1", names.tickets, "G-1", grey_ticket(1)),
        bad("not UTF-8", names.stock, "DEP-junk", bytes([0xFF, 0xFE, 0x00, 0x80, *range(0xC0, 0x100), 0x7B]),
            "JSON"),
        valid("stock", names.stock, "DEP-TZ-1", stock),
        bad("JSON array", names.outlets, "OUT-list", orjson.dumps([outlet]), "object"),
        valid("grey ticket 2", names.tickets, "G-2", grey_ticket(2)),
        bad("missing vin", names.tickets, "B-1", orjson.dumps(no_vin), "vin", "required"),
        valid("outlet", names.outlets, "OUT-TZ-1", outlet),
        bad("quantity three", names.stock, "DEP-TZ-1", orjson.dumps(three), "quantity_on_hand", "three"),
        valid("grey ticket 3", names.tickets, "G-3", grey_ticket(3)),
        bad("naive timestamp", names.tickets, "B-2", orjson.dumps(naive), "occurred_at", "offset"),
        bad("bad VIN", names.tickets, "B-3", orjson.dumps(bad_vin), "vin"),
        valid("grey ticket 4", names.tickets, "G-4", grey_ticket(4)),
        bad("oversized report", names.stock, "DEP-KE-BIG", oversized_report(), "lines[16399].quantity_on_hand"),
        valid("grey ticket 5", names.tickets, "G-5", grey_ticket(5)),
        bad("unknown market", names.outlets, "OUT-XX-1", orjson.dumps(unknown_market), "market", "XX"),
        bad("bad registration", names.registry, "EXP-901", orjson.dumps(bad_registration), "role"),
        valid("grey ticket 6", names.tickets, "G-6", grey_ticket(6)),
    ]


async def send_all(bootstrap: str, sent: list[Sent]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=4 * 1024 * 1024)
    await producer.start()
    try:
        for message in sent:
            metadata = await producer.send_and_wait(message.topic, message.value, key=message.key)
            message.partition, message.offset = metadata.partition, metadata.offset
    finally:
        await producer.stop()


async def read_all(bootstrap: str, topic: str, *, until: Callable[[list[Any]], bool], idle: float,
                   timeout: float = NEVER) -> list[Any]:
    """Raw records of `topic` from the beginning, once `until(records)` holds and then `idle` s of quiet
    (fetch limits well above the ~1 MB a dead-lettered 900 KB message takes)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False, max_partition_fetch_bytes=32 * 1024 * 1024,
                                fetch_max_bytes=64 * 1024 * 1024)
    await consumer.start()
    records: list[Any] = []
    started = quiet_since = time.monotonic()
    try:
        while time.monotonic() - started < timeout:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
                quiet_since = time.monotonic()
            if time.monotonic() - quiet_since >= idle and until(records):
                break
    finally:
        await consumer.stop()
    return records


def metrics(worker: WorkerProcess) -> dict[str, float]:
    """The worker's /metrics samples, by name with labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def original_bytes(document: dict[str, Any]) -> bytes:
    if document.get("value_encoding") == "base64":
        return base64.b64decode(document["value"], validate=True)
    return document["value"].encode("utf-8")


def test_every_bad_message_is_dead_lettered_once_whole_and_the_rest_still_counts(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    names = unique_names()
    sent = messages(names)
    bad = [m for m in sent if m.reason_names]
    grey = [m for m in sent if m.name.startswith("grey ticket")]
    with WorkerProcess(kafka_bootstrap, names, tmp_path) as worker:
        worker.wait_ready()
        asyncio.run(send_all(kafka_bootstrap, sent))

        dead = asyncio.run(read_all(kafka_bootstrap, names.deadletter, until=lambda r: len(r) >= len(bad), idle=3.0))

        def alerts_ready(records: list[Any]) -> bool:
            subjects = {orjson.loads(r.value)["subject"] for r in records}
            return all(f"{m.key.decode()}/{GREY_VIN}" in subjects for m in grey)

        def figures_ready(records: list[Any]) -> bool:
            latest = {r.key: orjson.loads(r.value) for r in records}
            newcomer = latest.get(f"{NEWCOMER}:TZ".encode())
            return b"EXP-001:KE" in latest and newcomer is not None and (
                newcomer["parts_inventory"]["stocked"], newcomer["emergency_coverage"]["active_outlets"]) == (2, 1)

        alert_records = asyncio.run(read_all(kafka_bootstrap, names.alerts, until=alerts_ready, idle=2.0))
        snapshot_records = asyncio.run(read_all(kafka_bootstrap, names.compliance, until=figures_ready, idle=1.0))
        assert worker.process is not None and worker.process.poll() is None, f"the worker died:\n{worker.tail()}"
        health = worker.health()
        samples = metrics(worker)
        log = worker.tail(80)

    # ---- every bad message, exactly once, whole, where it was read -------------------------------
    documents = [orjson.loads(record.value) for record in dead]
    found = Counter((d["topic"], d["partition"], d["offset"]) for d in documents)
    print("dead-lettered:", sorted((d["topic"].removeprefix(names.prefix), d["reason"][:80]) for d in documents))
    assert len(documents) == len(bad), (f"{len(documents)} dead letters for {len(bad)} bad messages: "
                                        f"{[(m.name, found[(m.topic, m.partition, m.offset)]) for m in bad]}\n{log}")
    for message in bad:
        where = (message.topic, message.partition, message.offset)
        assert found[where] == 1, f"{message.name}: dead-lettered {found[where]} times\n{log}"
        [document] = [d for d in documents if (d["topic"], d["partition"], d["offset"]) == where]
        [record] = [r for r in dead if orjson.loads(r.value) == document]
        assert original_bytes(document) == message.value, f"{message.name}: not the original bytes"
        assert document["value_encoding"] == ("base64" if message.name == "not UTF-8" else "utf-8"), message.name
        assert document["key"] == message.key.decode(), message.name
        assert record.key == message.key, f"{message.name}: the dead letter keeps the original key"
        for word in message.reason_names:
            assert word in document["reason"], f"{message.name}: reason {document['reason']!r} lacks {word!r}"
        assert isinstance(document["errors"], list) and document["errors"], message.name
        assert datetime.fromisoformat(document["rejected_at"].replace("Z", "+00:00")).tzinfo is not None
    assert not [m for m in sent if not m.reason_names and found[(m.topic, m.partition, m.offset)]], \
        "a valid message was dead-lettered"

    # ---- the worker is alive and read everything ---------------------------------------------------
    assert health is not None and health["status"] == "ok", health
    for topic, short in ((names.tickets, "service-tickets"), (names.stock, "parts-stock"),
                         (names.outlets, "outlet-status"), (names.registry, "registry")):
        produced = sum(1 for m in sent if m.topic == topic)
        assert samples[f'monitor_events_consumed_total{{topic="{short}"}}'] == produced, short
    rejected = sum(v for k, v in samples.items() if k.startswith("monitor_events_rejected_total{"))
    assert rejected == len(bad)

    # ---- every valid event had its effect ----------------------------------------------------------
    alerts = final_alerts(orjson.loads(r.value) for r in alert_records)
    grey_alerts = [a for a in alerts.values() if a["obligation"] == "authorisation" and a["exporter_id"] == "EXP-001"
                   and a["subject"].startswith("G-")]
    assert sorted(a["subject"] for a in grey_alerts) == sorted(f"{m.key.decode()}/{GREY_VIN}" for m in grey)
    assert all(a["status"] == "open" and a["market"] == "KE" for a in grey_alerts)
    assert not [a for a in alerts.values() if a["exporter_id"] in (NEWCOMER, "EXP-901")
                and a["obligation"] == "authorisation" and a["status"] != "retracted"], \
        "the newcomer's registration was read: it is registered and licensed"

    snapshots = {record.key.decode(): orjson.loads(record.value) for record in snapshot_records}
    newcomer = snapshots.get(f"{NEWCOMER}:TZ")
    assert newcomer is not None, sorted(snapshots)
    assert newcomer["parts_inventory"]["catalogue"] == 5, "the catalogue comes from the registry topic"
    assert newcomer["parts_inventory"]["stocked"] == 2, "NW-1 and NW-2 are on hand, NW-3 is not"
    assert newcomer["emergency_coverage"]["active_outlets"] == 1
    assert newcomer["emergency_coverage"]["covered"] is True
    assert "EXP-001:KE" in snapshots, "the grey-market tickets count in EXP-001's figures"
    assert "EXP-901" not in {s["exporter_id"] for s in snapshots.values()}
