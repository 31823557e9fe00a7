"""`monitor evaluate` throughput and memory, beside baselines measured in the same run on the same lines.

    PYTHONPATH=. python bench/evaluate_bench.py                 # a synthetic licence year, ~1,000,000 events
    PYTHONPATH=. python bench/evaluate_bench.py --quick         # ~50,000 events, a smoke run
    PYTHONPATH=. python bench/evaluate_bench.py --events 2000000 --seed 7 --keep /tmp/year

The events come from the synthetic network (monitor.simulation.network) and are written
as JSON lines to a temporary file. Each measurement then runs in a fresh process of its
own (spawned, not forked), so no measurement's memory or warm caches count against
another, and its peak RSS is its own:

1. baseline: `orjson.loads` of every line;
2. baseline: pydantic's validation of every line against the contract
   (`monitor.contracts.lines.EVENT_LINE.validate_json`);
3. `monitor evaluate` over the file, through the function the command uses
   (`monitor.batch.evaluate.evaluate_files`), in one process and with its default split;
4. the engine's memory per open ticket cycle: N tickets opened and never answered fed to
   `monitor.obligations.engine.ComplianceEngine`, the growth traced by tracemalloc, over N.

Absolute rates on shared machines vary from day to day; the ratios to the baselines of
the same run are what to compare.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parent.parent
TARGET_EVENTS_PER_SECOND = 200_000  # ARCHITECTURE.md, Targets: offline evaluate over JSON lines
TARGET_PYDANTIC_WHEN_SET = 600_000  # pydantic's own validation rate on the machine the target was set on
TARGET_BYTES_PER_OPEN_CYCLE = 1024  # ARCHITECTURE.md, Targets: memory
QUICK_EVENTS = 50_000
YEAR_EVENTS = 1_000_000
MIN_EXPORTERS = 3  # two automakers and a distributor: both roles, both categories
LICENCE_YEAR_DAYS = 365


# ---- the synthetic licence year -------------------------------------------------------------------


def network_for(target_events: int, seed: int) -> Any:
    """A network spec whose events come close to `target_events`: a licence year, with as many
    exporters as that takes; below three exporters' year, three exporters over fewer days."""
    from monitor.simulation.network import NetworkSpec

    base = NetworkSpec(seed=seed)
    per_exporter_day = base.expected_events_per_day() / base.exporters
    exporters = round(target_events / (per_exporter_day * LICENCE_YEAR_DAYS))
    if exporters >= MIN_EXPORTERS:
        return NetworkSpec(seed=seed, exporters=exporters, days=LICENCE_YEAR_DAYS)
    days = max(1, round(target_events / (per_exporter_day * MIN_EXPORTERS)))
    return NetworkSpec(seed=seed, exporters=MIN_EXPORTERS, days=min(days, LICENCE_YEAR_DAYS))


def write_network(spec: Any, directory: Path) -> tuple[Path, Path, int]:
    """The spec's events as JSON lines and its registry as JSON, in `directory`; returns the
    two paths and the number of events."""
    from monitor.simulation.network import events, registrations

    events_path, registry_path = directory / "events.jsonl", directory / "registry.json"
    registry_path.write_bytes(orjson.dumps(registrations(spec), option=orjson.OPT_INDENT_2))
    dumps = orjson.dumps
    count = 0
    with events_path.open("wb", buffering=1 << 20) as out:
        batch: list[bytes] = []
        for event in events(spec):
            batch.append(dumps(event))
            if len(batch) == 10_000:
                out.write(b"\n".join(batch) + b"\n")
                count += len(batch)
                batch.clear()
        if batch:
            out.write(b"\n".join(batch) + b"\n")
            count += len(batch)
    return events_path, registry_path, count


# ---- measurements, each run in a fresh process ------------------------------------------------------


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _peaks_kib() -> tuple[int, int]:
    """This process's peak RSS, and the largest peak among the processes it waited for (KiB).

    The process's own peak comes from /proc (VmHWM), which starts afresh at exec; getrusage's
    maxrss would carry over the peak of the process that spawned it.
    """
    own = _status_kib("VmHWM")
    if own is None:
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss


def _each_line(path: Path, parse: Callable[[bytes], Any]) -> dict[str, Any]:
    count = 0
    with path.open("rb") as lines:
        for line in lines:
            parse(line)
            count += 1
    return {"lines": count}


def _orjson_loads(path: Path) -> dict[str, Any]:
    return _each_line(path, orjson.loads)


def _validate_json(path: Path) -> dict[str, Any]:
    from monitor.contracts.lines import EVENT_LINE

    return _each_line(path, EVENT_LINE.validate_json)


def _evaluate(path: Path, registry_path: Path, processes: int | None) -> dict[str, Any]:
    import inspect

    from monitor.batch.evaluate import evaluate_files
    from monitor.config_files import load_registry

    registry = load_registry(registry_path)
    options: dict[str, Any] = {}
    if "processes" in inspect.signature(evaluate_files).parameters:
        options["processes"] = processes
    elif processes is not None:
        raise RuntimeError("evaluate_files takes no `processes`: cannot choose how many processes judge")
    document = evaluate_files([path], registry=registry, policy=None, as_of=None, **options)
    return {"alerts": len(document["alerts"]), "rejected": len(document["rejected"]),
            "figures": len(document["figures"])}


def _timed(task: str, *args: Any) -> dict[str, Any]:
    """Run one measurement in this (fresh) process: imports first, then the timed work."""
    measurements: dict[str, Callable[..., dict[str, Any]]] = {
        "orjson": _orjson_loads, "pydantic": _validate_json, "evaluate": _evaluate}
    work = measurements[task]
    if task == "pydantic":
        from monitor.contracts.lines import EVENT_LINE  # noqa: F401  (imported before the clock starts)
    elif task == "evaluate":
        import monitor.batch.evaluate  # noqa: F401
    rss_start = _status_kib("VmRSS") or 0
    started = time.perf_counter()
    outcome = work(*args)
    seconds = time.perf_counter() - started
    own, children = _peaks_kib()
    return {"seconds": seconds, "rss_start_kib": rss_start, "peak_kib": own, "children_peak_kib": children,
            **outcome}


def _open_cycle_memory(registry_path: Path, cycles: int, warm_up: int) -> dict[str, Any]:
    """Bytes the engine holds per open (never answered) ticket cycle, traced by tracemalloc.

    Each ticket goes the way a line goes in `evaluate`: its JSON bytes validated against the
    contract, then applied at its instant. The events themselves are dropped after applying,
    so what remains is the engine's own state for the ticket.
    """
    import gc
    import tracemalloc

    from monitor.config_files import load_registry
    from monitor.contracts.lines import EVENT_LINE, TicketLine
    from monitor.contracts.policy import DEFAULT_POLICY
    from monitor.obligations.engine import ComplianceEngine
    from monitor.obligations.policy import PolicyBook
    from monitor.obligations.timebase import to_micros
    from monitor.simulation.network import rfc3339

    registry = load_registry(registry_path)
    exporter = next(r for r in registry.values() if r.role.value == "automaker" and r.major_markets)
    wmi = sorted(exporter.wmis())[0]
    market = exporter.major_markets[0]
    engine = ComplianceEngine(registry, PolicyBook(DEFAULT_POLICY))
    validate = EVENT_LINE.validate_json
    opened = datetime.combine(exporter.licence.valid_from if exporter.licence else date(2026, 1, 1), dtime(0),
                              tzinfo=UTC) + timedelta(days=1)
    first = int(opened.timestamp())

    def open_tickets(start: int, stop: int) -> None:
        for n in range(start, stop):
            line = orjson.dumps({
                "topic": "service-tickets", "event_id": f"t-{n:010d}", "type": "opened",
                "ticket_id": f"T-{n:09d}", "exporter_id": exporter.exporter_id, "market": market,
                "vin": f"{wmi}CE4CB5T{n % 10_000_000:07d}", "outlet_id": f"OUT-{market}-{n % 50:02d}",
                "occurred_at": rfc3339(first + n, "Z")})
            event = validate(line)
            if not isinstance(event, TicketLine):
                raise TypeError(f"expected a service-tickets line, got {type(event).__name__}")
            engine.apply_instant(to_micros(event.occurred_at), [event])

    open_tickets(0, warm_up)  # first-time allocations (the exporter's book, market state) are not per cycle
    gc.collect()
    tracemalloc.start(1)
    before, _ = tracemalloc.get_traced_memory()
    open_tickets(warm_up, warm_up + cycles)
    gc.collect()
    after, _ = tracemalloc.get_traced_memory()
    top = tracemalloc.take_snapshot().statistics("lineno")[:5]
    tracemalloc.stop()
    return {"cycles": cycles, "bytes_per_cycle": (after - before) / cycles,
            "top": [(f"{Path(s.traceback[0].filename).name}:{s.traceback[0].lineno}", s.size / cycles)
                    for s in top]}


def in_fresh_process(function: Any, *args: Any) -> Any:
    """`function(*args)` in a newly spawned process, so that process's memory is its own."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


# ---- the report -------------------------------------------------------------------------------------


def _mib(kib: float) -> str:
    return f"{kib / 1024:,.0f} MiB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=YEAR_EVENTS,
                        help=f"about how many events to generate (default {YEAR_EVENTS:,}: a licence year)")
    parser.add_argument("--quick", action="store_true", help=f"a smoke run: about {QUICK_EVENTS:,} events")
    parser.add_argument("--seed", type=int, default=2026, help="the synthetic network's seed (default 2026)")
    parser.add_argument("--cycles", type=int, help="open ticket cycles for the memory measurement "
                                                   "(default 100,000; 10,000 with --quick)")
    parser.add_argument("--keep", type=Path,
                        help="write the events and registry into this directory and keep them")
    parser.add_argument("--skip-evaluate", action="store_true", help="baselines only")
    options = parser.parse_args()
    target = QUICK_EVENTS if options.quick else options.events
    cycles = options.cycles or (10_000 if options.quick else 100_000)

    load_before = os.getloadavg()[0]
    spec = network_for(target, options.seed)
    directory = options.keep or Path(tempfile.mkdtemp(prefix="evaluate-bench-"))
    directory.mkdir(parents=True, exist_ok=True)
    print(f"generating about {target:,} events ({spec.exporters} exporters x {spec.markets_per_exporter} "
          f"markets, {spec.days} days from {spec.start}, seed {spec.seed}) …", file=sys.stderr)
    started = time.perf_counter()
    events_path, registry_path, count = write_network(spec, directory)
    generated = time.perf_counter() - started
    size = events_path.stat().st_size

    rows: list[tuple[str, dict[str, Any] | None, str]] = []
    plan: list[tuple[str, tuple[Any, ...]]] = [
        ("baseline: orjson.loads per line", ("orjson", events_path)),
        ("baseline: pydantic EVENT_LINE.validate_json", ("pydantic", events_path)),
    ]
    if not options.skip_evaluate:
        plan += [
            ("monitor evaluate, 1 process", ("evaluate", events_path, registry_path, 1)),
            ("monitor evaluate, default processes", ("evaluate", events_path, registry_path, None)),
        ]
    try:
        for name, args in plan:
            print(f"measuring {name} …", file=sys.stderr)
            try:
                rows.append((name, in_fresh_process(_timed, *args), ""))
            except (ImportError, RuntimeError, TypeError) as exc:
                rows.append((name, None, f"{type(exc).__name__}: {exc}"))
        print(f"measuring memory per open ticket cycle ({cycles:,} cycles) …", file=sys.stderr)
        try:
            memory: dict[str, Any] | None = in_fresh_process(_open_cycle_memory, registry_path, cycles, 1_000)
            memory_problem = ""
        except (ImportError, AttributeError, TypeError) as exc:
            memory, memory_problem = None, f"{type(exc).__name__}: {exc}"
    finally:
        if options.keep is None:
            events_path.unlink()
            registry_path.unlink()
            directory.rmdir()

    print(f"\n{count:,} events: {spec.exporters} exporters, {spec.exporters * spec.markets_per_exporter} "
          f"exporter-markets, {spec.days} days from {spec.start} ({size / 1e6:,.0f} MB of JSON lines, "
          f"generated in {generated:.1f} s = {count / generated:,.0f} events/s)")
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, load average "
          f"{load_before:.2f} before the run, {os.getloadavg()[0]:.2f} after "
          f"(other work on the machine skews the figures)\n")

    header = f"{'measurement':46s} {'seconds':>8s} {'events/s':>10s} {'RSS at start':>13s} {'peak RSS':>10s}"
    print(header)
    print("-" * len(header))
    rates: dict[str, float] = {}
    for name, result, problem in rows:
        if result is None:
            print(f"{name:46s} not measured: {problem}")
            continue
        rate = count / result["seconds"]
        rates[name] = rate
        peak = _mib(result["peak_kib"])
        if result["children_peak_kib"] > 0 and "evaluate" in name:
            peak += f" (largest partition {_mib(result['children_peak_kib'])})"
        start = _mib(result["rss_start_kib"])
        print(f"{name:46s} {result['seconds']:8.2f} {rate:10,.0f} {start:>13s} {peak:>10s}")
        if "alerts" in result:
            print(f"{'':46s} {result['alerts']:,} alerts, {result['figures']:,} figures, "
                  f"{result['rejected']:,} rejected lines")

    baselines = [name for name in rates if name.startswith("baseline")]
    evaluations = [name for name in rates if name.startswith("monitor")]
    if evaluations and baselines:
        print("\nratio of evaluate to each baseline (same lines, same run)")
        for name in evaluations:
            ratios = ", ".join(f"{rates[name] / rates[b]:.3f}x {b.split(': ', 1)[1].split()[0]}"
                               for b in baselines)
            print(f"  {name:44s} {ratios}")

    print("\ntargets (ARCHITECTURE.md)")
    pydantic = rates.get("baseline: pydantic EVENT_LINE.validate_json")
    if evaluations:
        best = max(evaluations, key=rates.__getitem__)
        verdict = "met" if rates[best] >= TARGET_EVENTS_PER_SECOND else "NOT met"
        print(f"  evaluate >= {TARGET_EVENTS_PER_SECOND:,} events/s: best here {rates[best]:,.0f} events/s "
              f"({best.removeprefix('monitor evaluate, ')}), {rates[best] / TARGET_EVENTS_PER_SECOND:.0%} "
              f"of target: {verdict}")
        if pydantic:
            scaled = pydantic * TARGET_EVENTS_PER_SECOND / TARGET_PYDANTIC_WHEN_SET
            print(f"    scaled to this run (the target was set where validate_json ran "
                  f"~{TARGET_PYDANTIC_WHEN_SET:,}/s; here {pydantic:,.0f}/s): {scaled:,.0f} events/s")
    else:
        print(f"  evaluate >= {TARGET_EVENTS_PER_SECOND:,} events/s: not measured")
    if memory is not None:
        per_cycle = memory["bytes_per_cycle"]
        verdict = "met" if per_cycle <= TARGET_BYTES_PER_OPEN_CYCLE else "NOT met"
        print(f"  memory <= {TARGET_BYTES_PER_OPEN_CYCLE:,} B per open ticket cycle: {per_cycle:,.0f} B "
              f"(over {memory['cycles']:,} open cycles, tracemalloc): {verdict}")
        print("    where it goes, per cycle: "
              + "; ".join(f"{where} {size:,.0f} B" for where, size in memory["top"]))
    else:
        print(f"  memory <= {TARGET_BYTES_PER_OPEN_CYCLE:,} B per open ticket cycle: "
              f"not measured ({memory_problem})")
    if options.keep:
        print(f"\nkept {events_path} and {registry_path}")
    return 0 if all(result is not None for _, result, _ in rows) and memory is not None else 1


if __name__ == "__main__":
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))  # run from anywhere without installing the package
    sys.exit(main())
