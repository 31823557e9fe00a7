"""`monitor worker` over long histories: alerts retracted on a replay, memory, and kill -9 to settled,
each beside its baseline measured in the same run on the same broker.

    python bench/takeover_bench.py                    # ~20 minutes: a licence year and a tenth of it
    python bench/takeover_bench.py --quick            # a smoke run: 40 days and 4 days (~5 minutes)
    python bench/takeover_bench.py --only replay      # or: memory (the histories, RSS and takeover)
    python bench/takeover_bench.py --broker kafka     # on Apache Kafka (KRaft, one node) instead
    python bench/takeover_bench.py --instance-id      # the killed worker restarted under its MONITOR_INSTANCE_ID

1. **replay**: as `monitor demo` does, a worker on the wall clock is started, then 30 days of a
   5-exporter network are produced at 2,000 events/s (faster than real time) and the network
   goes on live; 20 s after the history is out, the alerts topic is read: distinct alerts
   published, and how many of them stand retracted. The baseline is the same replay judged on
   the wall clock alone (`MONITOR_CLOCK_LAG_BOUND_SECONDS` larger than the history), as a
   worker without per-exporter clocks judged it.
2. **memory and takeover**: a licence year of a 40-exporter network (3 markets each, the
   simulator's rates scaled down to about 200,000 tickets) and a tenth of it (the same network,
   the last 36 days) are produced as a backlog, each on topics of its own; a worker judges it
   to the end and checkpoints it; its resident memory is read then; it is killed -9 and a new
   worker started in its group (with --instance-id: the same instance started again, Kafka static
   membership). Kill -9 to settled is until the new worker holds every
   partition, has restored its exporters and judges again (`/healthz`), with the events it
   judged again (`monitor_takeover_events_rejudged_total`). The tenth is the year's baseline.

Absolute figures vary with the machine; the ratios of the same run are what to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]

from stream_bench import (  # noqa: E402 - the bench folder is put on the path above
    Child,
    Worker,
    _family_kib,
    _get,
    _mib,
    ensure,
    make_broker,
    metric_sum,
    produce_backlog,
    progress,
    unique_prefix,
)

TARGET_RETRACTED_SHARE = 0.01
TARGET_RSS_RATIO = 1.2
TARGET_TAKEOVER_SECONDS = 10.0
TARGET_TAKEOVER_RATIO = 1.5
PARTITIONS = 8  # the worker's default


def _alerts(bootstrap: str, topic: str) -> dict[str, str]:
    """alert_id -> its last status, from the whole alerts topic."""
    from tests.streaming import read_topic

    messages = asyncio.run(read_topic(bootstrap, topic, idle=3.0, timeout=600))
    last: dict[str, str] = {}
    for message in messages:
        last[message["alert_id"]] = message["status"]
    return last


def replay(bootstrap: str, workdir: Path, *, days: int, exporters: int, rate: float, live_seconds: float,
           wall_clock_only: bool) -> dict[str, Any]:
    from monitor.simulation.network import NetworkSpec
    from monitor.simulation.produce import SimulationPlan, period_ending_today
    from monitor.simulation.produce import produce as simulate

    prefix = unique_prefix("replay")
    names = ensure(bootstrap, prefix)
    env = {"MONITOR_CLOCK_LAG_BOUND_SECONDS": str(10 * 365 * 86_400)} if wall_clock_only else {}
    worker = Worker("worker (wall clock only)" if wall_clock_only else "worker", bootstrap, prefix, workdir, env=env)
    try:
        while _get(f"http://127.0.0.1:{worker.web_port}/healthz") is None:
            worker.check()
            time.sleep(0.2)
        spec = NetworkSpec(seed=2026, exporters=exporters, days=days, start=period_ending_today(days))
        stop = asyncio.Event()

        async def run() -> Any:
            plan = SimulationPlan(spec=spec, rate=rate, live=True)
            task = asyncio.create_task(simulate(plan, bootstrap, prefix, stop=stop))
            started = time.monotonic()
            # the history is out when the producer reaches the present; then live for a while
            history_seconds = spec.expected_events_per_day() * days / rate
            await asyncio.sleep(history_seconds + live_seconds)
            stop.set()
            stats = await task
            return stats, time.monotonic() - started

        stats, seconds = asyncio.run(run())
        worker.check()
        time.sleep(5)
        last = _alerts(bootstrap, names.alerts)
    finally:
        worker.stop()
    retracted = sum(1 for status in last.values() if status == "retracted")
    return {"events": stats.produced, "seconds": seconds, "alerts": len(last), "retracted": retracted,
            "share": retracted / len(last) if last else 0.0}


def _spec(days: int, end_days: int | None = None) -> Any:
    """The 40-exporter network of a licence year (about 200,000 tickets a year), its last `days` days."""
    from monitor.simulation.network import NetworkSpec
    from monitor.simulation.produce import period_ending_today

    return NetworkSpec(seed=2027, exporters=40, markets_per_exporter=3, outlets_per_market=6,
                       tickets_per_day_per_market=4.6, heartbeat_minutes=1380, stock_report_hours=24,
                       start=period_ending_today(days), days=days)


def _health(worker: Worker) -> dict[str, Any]:
    body = _get(f"http://127.0.0.1:{worker.web_port}/healthz")
    return json.loads(body) if body else {}


def history_and_takeover(bootstrap: str, workdir: Path, days: int, label: str, instance_id: bool) -> dict[str, Any]:
    prefix = unique_prefix(f"history-{days}")
    spec = _spec(days)
    progress(f"{label}: producing {days} days of a {spec.exporters}-exporter network …")
    backlog = produce_backlog(bootstrap, prefix, spec, limit=None)
    total = backlog["records"]
    progress(f"{label}: {total:,} records produced in {backlog['seconds']:.0f} s; a worker judges them …")
    env = {"MONITOR_CHECKPOINT_SECONDS": "10"}
    if instance_id:  # the new worker is the killed one started again under its name (static membership)
        env["MONITOR_INSTANCE_ID"] = f"bench-{days}"
    first = Worker(f"worker ({label})", bootstrap, prefix, workdir, env=env)
    started = time.monotonic()
    try:
        last_report = started
        judged, judged_since = -1.0, time.monotonic()
        while True:
            first.check()
            text = first.metrics() or ""
            read = metric_sum(text, "monitor_events_consumed_total")
            now_judged = (metric_sum(text, "monitor_event_processing_lag_seconds_count")
                          + metric_sum(text, "monitor_events_duplicate_total"))
            if now_judged != judged:
                judged, judged_since = now_judged, time.monotonic()
            # all read, nothing more judged for 3 s, and every exporter checkpointed since
            if read >= total and time.monotonic() - judged_since >= 3 \
                    and metric_sum(text, "monitor_events_since_checkpoint") == 0 \
                    and metric_sum(text, "monitor_checkpoints_written_total") > 0:
                break
            if time.monotonic() - last_report >= 15:
                last_report = time.monotonic()
                progress(f"  {read:,.0f} of {total:,} read, {judged:,.0f} events judged, "
                         f"{metric_sum(text, 'monitor_events_since_checkpoint'):,.0f} since a checkpoint")
            time.sleep(0.5)
        judged_seconds = time.monotonic() - started
        rss = _family_kib(first.pid, "VmRSS")  # both stages: the judging and its intake child
        peak = first.peak_rss_kib()
        checkpoint_bytes = int(metric_sum(first.metrics() or "", "monitor_checkpoint_size_bytes_sum"))
        checkpoints = metric_sum(first.metrics() or "", "monitor_checkpoints_written_total")
        progress(f"{label}: judged and checkpointed in {judged_seconds:.0f} s; RSS {_mib(rss)}; killing it -9")
        os.killpg(first.pid, signal.SIGKILL)  # both stages, as a machine that dies takes them both
        first.process.wait(10)
        killed = time.monotonic()
        Child.running.remove(first)
        second = Worker(f"worker taking over ({label})", bootstrap, prefix, workdir, app_id=first.app_id, env=env)
        try:
            while True:
                second.check()
                health = _health(second)
                if health.get("recovered") and len(health.get("partitions") or ()) == PARTITIONS:
                    break
                time.sleep(0.05)
            settled = time.monotonic() - killed
            text = second.metrics() or ""
            rejudged = metric_sum(text, "monitor_takeover_events_rejudged_total")
            rss_after = _family_kib(second.pid, "VmRSS")
        finally:
            second.stop()
    finally:
        if first.alive():
            first.stop()
    return {"days": days, "records": total, "judged_seconds": judged_seconds, "rss_kib": rss, "peak_rss_kib": peak,
            "checkpoints": checkpoints, "checkpoint_bytes": checkpoint_bytes, "kill_to_settled": settled,
            "rejudged": rejudged, "rss_after_kib": rss_after}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="40 days and 4 days instead of a year and a tenth")
    parser.add_argument("--only", default="replay,memory", help="comma-separated parts: replay, memory")
    parser.add_argument("--broker", choices=("embedded", "kafka"), default="embedded")
    parser.add_argument("--instance-id", action="store_true",
                        help="memory: the killed worker and the one taking over share MONITOR_INSTANCE_ID (a restart "
                             "of the same instance, Kafka static membership); default: a new worker in the group")
    parser.add_argument("--json", action="store_true", help="also write the figures to bench/out/takeover.json")
    options = parser.parse_args()
    parts = {p.strip() for p in options.only.split(",") if p.strip()}

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    workdir = Path(tempfile.mkdtemp(prefix="takeover-bench-"))
    broker, broker_name = make_broker(options.broker, workdir)
    results: dict[str, Any] = {"broker": broker_name}
    try:
        broker.start()
        progress(f"{broker_name} on {broker.bootstrap}; work directory {workdir}")
        if "replay" in parts:
            days = 10 if options.quick else 30
            for key, wall in (("clocks", False), ("wall_clock_only", True)):
                progress(f"replay ({key}): {days} days at 2,000 events/s, then live …")
                results[f"replay_{key}"] = replay(broker.bootstrap, workdir, days=days, exporters=5, rate=2000.0,
                                                  live_seconds=20.0, wall_clock_only=wall)
        if "memory" in parts:
            year, tenth = (40, 4) if options.quick else (365, 36)
            results["tenth"] = history_and_takeover(broker.bootstrap, workdir, tenth, "a tenth", options.instance_id)
            results["year"] = history_and_takeover(broker.bootstrap, workdir, year, "the year", options.instance_id)
    except KeyboardInterrupt:
        progress("interrupted")
        return 130
    finally:
        Child.stop_all()
        broker.stop()

    print(f"\n# long histories, {broker_name}\n")
    if "replay_clocks" in results:
        clocks, wall = results["replay_clocks"], results["replay_wall_clock_only"]
        print("| replay like the demo's | events | alerts published | retracted | share | target |")
        print("|---|---|---|---|---|---|")
        for name, figures, target in (("per-exporter clocks", clocks, f"≤ {TARGET_RETRACTED_SHARE:.0%}"),
                                      ("wall clock only (baseline)", wall, "")):
            print(f"| {name} | {figures['events']:,} | {figures['alerts']:,} | {figures['retracted']:,} | "
                  f"{figures['share']:.1%} | {target} |")
    if "year" in results:
        year, tenth = results["year"], results["tenth"]
        rss_ratio = (year["rss_kib"] or 0) / (tenth["rss_kib"] or 1)
        take_ratio = year["kill_to_settled"] / tenth["kill_to_settled"]
        by = "the killed worker started again under its instance id" if options.instance_id else "a new worker"
        print(f"\ntakeover by {by}")
        print("\n| history | records | judged in | worker RSS | peak RSS | kill -9 to settled | events judged again "
              "| RSS after takeover |")
        print("|---|---|---|---|---|---|---|---|")
        for name, figures in (("a tenth (baseline)", tenth), ("the year", year)):
            print(f"| {name}: {figures['days']} days | {figures['records']:,} | {figures['judged_seconds']:.0f} s | "
                  f"{_mib(figures['rss_kib'])} | {_mib(figures['peak_rss_kib'])} | {figures['kill_to_settled']:.1f} s"
                  f" | {figures['rejudged']:,.0f} | {_mib(figures['rss_after_kib'])} |")
        print(f"\nRSS, year ÷ tenth: {rss_ratio:.2f} (target ≤ {TARGET_RSS_RATIO}); kill -9 to settled: the year "
              f"{year['kill_to_settled']:.1f} s (target ≤ {TARGET_TAKEOVER_SECONDS:.0f} s), year ÷ tenth "
              f"{take_ratio:.2f} (target ≤ {TARGET_TAKEOVER_RATIO})")
    if options.json:
        out = Path(__file__).resolve().parent / "out"
        out.mkdir(exist_ok=True)
        (out / "takeover.json").write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
