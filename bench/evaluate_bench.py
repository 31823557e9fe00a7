"""`monitor evaluate` throughput and memory, beside baselines measured in the same run.

    python bench/evaluate_bench.py            # a synthetic licence year (about 1.1 million events)
    python bench/evaluate_bench.py --quick    # 30 days, for a smoke run

Every measurement runs in a child process of its own over the same file of lines, so
one's memory does not count against another's. Baselines: `orjson.loads` of each line,
and pydantic's validation of each line against the contract (EVENT_LINE.validate_json),
both with the cyclic GC paused as `evaluate` pauses it.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from monitor.simulation.network import NetworkSpec, events, registrations

TARGET_EVENTS_PER_SECOND = 200_000
TARGET_BYTES_PER_OPEN_CYCLE = 1024


def _peak_rss_mib() -> float:
    """The largest resident set of this process and any process it started."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def _orjson_only(path: Path) -> int:
    loads = orjson.loads
    count = 0
    with path.open("rb") as handle:
        for raw in handle:
            loads(raw)
            count += 1
    return count


def _pydantic_only(path: Path) -> int:
    from monitor.contracts.lines import EVENT_LINE

    validate = EVENT_LINE.validate_json
    count = 0
    with path.open("rb") as handle:
        for raw in handle:
            validate(raw)
            count += 1
    return count


def _evaluate(path: Path, registry: Path, processes: int) -> int:
    from monitor.batch.evaluate import evaluate_files
    from monitor.config_files import load_registry

    doc = evaluate_files([path], registry=load_registry(registry), processes=processes)
    return sum(1 for _ in path.open("rb")) - len(doc["rejected"]), len(doc["alerts"])  # type: ignore[return-value]


def _child(work: Callable[..., object], args: tuple, results: multiprocessing.Queue) -> None:
    gc.disable()
    started = time.perf_counter()
    outcome = work(*args)
    seconds = time.perf_counter() - started
    results.put((seconds, outcome, _peak_rss_mib()))


def _measure(work: Callable[..., object], *args: object) -> tuple[float, object, float]:
    context = multiprocessing.get_context("fork")
    results: multiprocessing.Queue = context.Queue()
    child = context.Process(target=_child, args=(work, args, results))
    child.start()
    outcome = results.get()
    child.join()
    return outcome


def _memory_per_open_cycle(cycles: int) -> float:
    """Bytes of engine state per open (unanswered) ticket cycle, measured with tracemalloc."""
    from monitor.contracts.events import ServiceTicketEvent
    from monitor.contracts.policy import DEFAULT_POLICY
    from monitor.obligations.engine import ComplianceEngine
    from monitor.obligations.policy import PolicyBook
    from monitor.obligations.timebase import to_micros

    spec = NetworkSpec()
    registry = {r["exporter_id"]: r for r in registrations(spec)}
    from monitor.contracts.registry import ExporterRegistration

    engine = ComplianceEngine({k: ExporterRegistration.model_validate(v) for k, v in registry.items()},
                              PolicyBook(DEFAULT_POLICY))
    exporter = next(iter(registry.values()))
    wmi = exporter["brands"][0]["wmi"][0]
    market = exporter["major_markets"][0]
    start = datetime(2026, 3, 1, tzinfo=UTC)
    warm = ServiceTicketEvent(event_id="warm", type="opened", ticket_id="T-warm", exporter_id=exporter["exporter_id"],
                              market=market, vin=f"{wmi}CE4CB5N0000000", occurred_at=start)
    engine.apply_instant(to_micros(start), [warm])
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for n in range(cycles):
        at = start + timedelta(seconds=n + 1)
        event = ServiceTicketEvent(event_id=f"e-{n:09d}", type="opened", ticket_id=f"T-{n:09d}",
                                   exporter_id=exporter["exporter_id"], market=market,
                                   vin=f"{wmi}CE4CB5N{n % 10_000_000:07d}", occurred_at=at)
        engine.apply_instant(to_micros(at), [event])
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / cycles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=365, help="days of synthetic events (default: a year)")
    parser.add_argument("--quick", action="store_true", help="30 days only")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--keep", type=Path, help="write the events and registry here and keep them")
    options = parser.parse_args()
    days = 30 if options.quick else options.days
    spec = NetworkSpec(seed=options.seed, days=days)

    directory = options.keep or Path(tempfile.mkdtemp(prefix="evaluate-bench-"))
    directory.mkdir(parents=True, exist_ok=True)
    events_path, registry_path = directory / "events.jsonl", directory / "registry.json"
    started = time.perf_counter()
    registry_path.write_bytes(orjson.dumps(registrations(spec)))
    count = 0
    with events_path.open("wb") as out:
        for event in events(spec):
            out.write(orjson.dumps(event) + b"\n")
            count += 1
    size = events_path.stat().st_size
    print(f"synthetic network: {spec.exporters} exporters, {days} days, {count:,} events "
          f"({size / 1e6:,.0f} MB), generated in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}\n")

    rows = []
    for name, work, args in [
        ("baseline: orjson.loads per line", _orjson_only, (events_path,)),
        ("baseline: pydantic validate_json per line", _pydantic_only, (events_path,)),
        ("monitor evaluate, 1 process", _evaluate, (events_path, registry_path, 1)),
        (f"monitor evaluate, {os.cpu_count()} processes", _evaluate, (events_path, registry_path, os.cpu_count())),
    ]:
        print(f"measuring {name} …", file=sys.stderr)
        seconds, _outcome, rss = _measure(work, *args)
        rows.append((name, seconds, count / seconds, rss))

    pydantic_rate = rows[1][2]
    print(f"{'what':46s} {'seconds':>8s} {'events/s':>12s} {'× pydantic':>10s} {'peak RSS':>10s}")
    for name, seconds, rate, rss in rows:
        print(f"{name:46s} {seconds:8.1f} {rate:12,.0f} {rate / pydantic_rate:10.2f} {rss:8,.0f} MiB")
    best = max(rate for name, _, rate, _ in rows if name.startswith("monitor"))
    print(f"\ntarget: {TARGET_EVENTS_PER_SECOND:,} events/s (set where pydantic alone ran ~600,000/s, i.e. "
          f"≈ 0.33× pydantic); best here: {best:,.0f} events/s = {best / pydantic_rate:.2f}× pydantic")

    per_cycle = _measure(_memory_per_open_cycle, 100_000)[1]
    print(f"memory per open ticket cycle: {per_cycle:,.0f} bytes (target ≤ {TARGET_BYTES_PER_OPEN_CYCLE:,})")
    if not options.keep:
        events_path.unlink()
        registry_path.unlink()
        directory.rmdir()


if __name__ == "__main__":
    main()
