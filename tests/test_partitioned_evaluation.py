"""Splitting `evaluate` over processes by exporter never changes the document."""

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from monitor.batch.evaluate import evaluate_files

MARKETS = ["KE", "NG", "ZA", "TH"]


def _registration(index: int) -> dict:
    distributor = index % 3 == 2
    return {
        "exporter_id": f"EXP-{index}", "role": "authorised_distributor" if distributor else "automaker",
        "category": "I" if index % 2 == 0 else "II", "authorised_by": [f"EXP-{index - 1}"] if distributor else [],
        "brands": [{"name": f"Brand{index}", "wmi": [f"L{index}X"]}],
        "licence": {"number": f"L-{index}", "valid_from": "2026-01-01", "valid_to": "2026-12-31"},
        "major_markets": MARKETS[: 1 + index % 3], "common_parts": {"*": [f"P{p}" for p in range(8)], "KE": ["KE-9"]},
    }


def _lines(seed: int) -> list[bytes]:
    """A few thousand events of six exporters, with duplicates, bad lines and in-file registrations."""
    rng = random.Random(seed)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    lines = [orjson.dumps({"topic": "registry", **_registration(5)})]  # registered only in the file
    for n in range(4000):
        exporter = rng.randrange(7)  # EXP-6 is registered nowhere
        at = (start + timedelta(minutes=n * 7 + rng.randrange(5))).isoformat()
        market = rng.choice(MARKETS)
        kind = rng.random()
        if kind < 0.45:
            event = {"topic": "outlet-status", "event_id": f"o-{n}", "exporter_id": f"EXP-{exporter}",
                     "outlet_id": f"O-{exporter}-{market}-{rng.randrange(4)}", "market": market,
                     "status": rng.choice(["operational"] * 8 + ["suspended", "closed"]),
                     "capabilities": rng.choice([["maintenance"], ["maintenance", "emergency_rescue_24h"]]),
                     "occurred_at": at}
        elif kind < 0.65:
            event = {"topic": "parts-stock", "event_id": f"s-{n}", "exporter_id": f"EXP-{exporter}",
                     "market": market, "depot_id": f"D-{exporter}-{market}",
                     "lines": [{"part_number": f"P{rng.randrange(10)}", "quantity_on_hand": rng.randrange(3)}
                               for _ in range(3)], "occurred_at": at}
        else:
            ticket = f"T-{exporter}-{rng.randrange(300)}"
            event = {"topic": "service-tickets", "event_id": f"t-{n}", "exporter_id": f"EXP-{exporter}",
                     "type": rng.choice(["opened", "opened", "responded", "resolved", "reopened", "cancelled"]),
                     "ticket_id": ticket, "market": market, "occurred_at": at,
                     "vin": rng.choice([f"L{exporter}XCE4CB5N00{n % 100000:05d}", "WVWZZZ1JZXW000001"])}
        lines.append(orjson.dumps(event))
        if rng.random() < 0.05:
            lines.append(orjson.dumps(event))  # redelivered
        if rng.random() < 0.01:
            lines.append(b'{"topic": "parts-stock", "event_id": "bad", "lines": []}')
        if rng.random() < 0.005:
            lines.append(b"\x00\xff not json")
    rng.shuffle(lines)
    return lines


def test_two_and_three_processes_give_the_single_process_document(tmp_path: Path) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    lines = _lines(seed=7)
    first.write_bytes(b"\n".join(lines[:2500]) + b"\n")
    second.write_bytes(b"\n".join(lines[2500:]) + b"\n")
    registry = [_registration(i) for i in range(5)]

    single = evaluate_files([first, second], registry=registry, processes=1)
    assert single["alerts"] and single["rejected"] and single["data_quality"], "the input exercises every part"
    assert {f["exporter_id"] for f in single["figures"]} == {f"EXP-{i}" for i in range(7)}
    for processes in (2, 3):
        assert evaluate_files([first, second], registry=registry, processes=processes) == single


def test_a_bad_registration_line_is_reported_once_whatever_the_split(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(b'{"topic": "registry", "exporter_id": "EXP-9", "role": "automaker"}\n')
    for processes in (1, 2):
        doc = evaluate_files([events], registry=[], processes=processes)
        assert [r["source"] for r in doc["rejected"]] == ["events.jsonl:1"]
