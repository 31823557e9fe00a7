"""What a stream worker counts and measures, in prometheus_client's default registry (served on /metrics).

Names follow Prometheus' conventions: base units in the name (`_seconds`, `_messages`),
counters end in `_total`. Label values come from closed sets (input topics, obligations,
severities, statuses, the reasons of `monitor.stream.intake.REASON_KINDS`), except the live
compliance gauges, which are labelled by exporter and market and bounded by
`ComplianceSeries` (MONITOR_METRICS_MAX_SERIES pairs per worker process).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

from monitor.history.daily import EXPORTER_WIDE, parts_of

log = logging.getLogger(__name__)

# no `<name>_created` series beside each counter and histogram: scraped from the text format, each
# would be stored as one more series, and nothing reads them
disable_created_metrics()

MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
# from a worker that keeps up (well under a second) to replays and simulations of past days
EVENT_LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, MINUTE, 5 * MINUTE, 15 * MINUTE, HOUR,
                     4 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY, 30 * DAY, 365 * DAY)
# the target is a breach published within a second of its deadline; a worker catching up is far behind
DEADLINE_LAG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, MINUTE, 5 * MINUTE, HOUR,
                        DAY, 7 * DAY)

CONSUMED = Counter("monitor_events_consumed_total",
                   "Input messages read by the intake stage, by input topic (messages)", ["topic"])
REJECTED = Counter("monitor_events_rejected_total",
                   "Input messages dead-lettered, by input topic and kind of problem (messages)", ["topic", "reason"])
DUPLICATES = Counter("monitor_events_duplicate_total",
                     "Input events ignored because their event_id was already seen (events)")
TRANSITIONS = Counter("monitor_alert_transitions_total",
                      "Alert messages published (each open, resolve and retraction), by obligation, severity and "
                      "status (messages)", ["obligation", "severity", "status"])
SNAPSHOTS = Counter("monitor_compliance_snapshots_total", "Compliance snapshots published (messages)")
CLOCK_BEHIND = Gauge("monitor_clock_behind_seconds",
                     "Wall clock minus the furthest-behind live clock of the exporters with data (seconds; "
                     "large while an exporter delivers a backlog)")
DATA_LAG = Gauge("monitor_exporter_data_lag_seconds",
                 "Wall clock minus the latest occurred_at received from an exporter (seconds; absent before its "
                 "first event)", ["exporter"])
CLOCK_STATE = Gauge("monitor_exporter_clock_state",
                    "1 for the state an exporter's live clock is in, 0 for the others: current and quiet run on the "
                    "wall clock, backlog on the exporter's own event time", ["exporter", "state"])
LOOP_LAG = Histogram("monitor_event_loop_lag_seconds",
                     "How late the worker's event loop ran a callback due every 50 ms (seconds; a stall of the loop "
                     "delays every deadline, heartbeat and fetch)",
                     buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))
REFETCHED = Counter("monitor_envelopes_refetched_total",
                    "Internal envelopes the consumer left out and the worker read from the topic directly (envelopes)")
RECOVERED = Counter("monitor_workaround_records_total",
                    "Records the worker read itself because its consumer or the broker left them out, by workaround: "
                    "input_skipped (input records after a gap), consumer_skipped (envelopes after a gap), "
                    "consumer_stopped_short (envelopes at a quiet "
                    "partition's end), changelog_past_reported_end and deadletter_past_reported_end (a broker "
                    "reporting end offsets short, the embedded one) (records)", ["workaround"])
CHECKPOINTS = Counter("monitor_checkpoints_written_total",
                      "Exporter state checkpoints written to the worker's table (checkpoints)")
CHECKPOINT_BYTES = Histogram("monitor_checkpoint_size_bytes", "Size of each exporter state checkpoint written (bytes)",
                             buckets=(4096, 16384, 65536, 262144, 1048576, 4194304, 16777216))
UNCHECKPOINTED = Gauge("monitor_events_since_checkpoint",
                       "Events judged since their exporter's last checkpoint, over this worker's exporters: what "
                       "a worker taking over now would judge again (events)")
REJUDGED = Counter("monitor_takeover_events_rejudged_total",
                   "Events judged again when a worker took a partition over: those since each exporter's "
                   "last checkpoint (events)")
EXPORTERS = Gauge("monitor_exporters_judged", "Exporters this worker judges, on its partitions (exporters)")
PROCESSING_LAG = Histogram(
    "monitor_event_processing_lag_seconds",
    "Wall clock when an input event is judged minus its occurred_at, by input topic (seconds; replays and "
    "simulations of the past show their age)", ["topic"], buckets=EVENT_LAG_BUCKETS)
DEADLINE_LAG = Histogram(
    "monitor_deadline_lag_seconds",
    "Publication of an alert raised by the clock (a ticket's at-risk point or deadline passing with no event) "
    "minus that instant (seconds; on the wall clock only)", buckets=DEADLINE_LAG_BUCKETS)
DEADLETTER = Gauge("monitor_deadletter_messages",
                   "Messages held in the dead-letter topic: end minus start offsets over its partitions (messages)")
CONSUMER_LAG = Gauge("monitor_consumer_lag_messages",
                     "Messages in an input partition after the last one this worker read (messages)",
                     ["topic", "partition"])
RESPONSE_RATIO = Gauge("monitor_compliance_response_ratio",
                       "Live response_48h ratio, compliant / (compliant + breached) ticket cycles (ratio 0-1; "
                       "absent while no cycle is judged)", ["exporter", "market"])
INVENTORY_RATE = Gauge("monitor_compliance_parts_inventory_rate",
                       "Live parts inventory rate, common parts stocked / catalogue (ratio 0-1; absent while "
                       "undefined)", ["exporter", "market"])
RESCUE_OUTLETS = Gauge("monitor_compliance_rescue_outlets",
                       "Active outlets offering 24-hour emergency rescue (outlets)", ["exporter", "market"])
MET = Gauge("monitor_compliance_met",
            "Whether an obligation is met now: 1 met, 0 not (parts_inventory, emergency_coverage in major markets, "
            "network_size with market=\"all\"; absent where not defined)", ["exporter", "market", "obligation"])
SERIES_DROPPED = Counter("monitor_compliance_series_dropped_total",
                         "Exporter-market pairs whose compliance gauges were not exported because this worker "
                         "already exports MONITOR_METRICS_MAX_SERIES pairs (pairs)")

ALL_MARKETS = "all"  # the market label of exporter-wide figures (network_size)
PAIR_OBLIGATIONS = ("parts_inventory", "emergency_coverage")  # `met` series per exporter and market


class ComplianceSeries:
    """The live compliance gauges of the exporters this worker judges, for at most `max_pairs`
    exporter-market pairs.

    Each pair exported costs 5 series (ratio, rate, rescue outlets, met of parts and of
    coverage) and each exporter one more (network size, market "all"). A pair is admitted the
    first time a snapshot of it comes while there is room, and keeps its series until its
    exporter moves to another worker (`drop`). A pair refused is counted once in
    `monitor_compliance_series_dropped_total`, and the first refusal is logged; it is admitted
    at a later snapshot if room has been freed by then.
    """

    def __init__(self, max_pairs: int, *, ratio: Gauge = RESPONSE_RATIO, rate: Gauge = INVENTORY_RATE,
                 rescue: Gauge = RESCUE_OUTLETS, met: Gauge = MET, dropped: Counter = SERIES_DROPPED) -> None:
        self.max_pairs = max_pairs
        self.ratio, self.rate, self.rescue, self.met, self.dropped = ratio, rate, rescue, met, dropped
        self.markets: dict[str, set[str]] = {}  # exporter -> markets whose series are exported
        self.pairs = 0
        self.refused: set[tuple[str, str]] = set()
        self._warned = False

    def update(self, snapshot: Mapping[str, Any]) -> bool:
        """Set the gauges of a ComplianceSnapshot's exporter and market; False when the pair is
        past the bound (nothing exported)."""
        exporter, market = snapshot["exporter_id"], snapshot["market"]
        markets = self.markets.get(exporter)
        if markets is None or market not in markets:
            if self.pairs >= self.max_pairs:
                self._refuse(exporter, market)
                return False
            self.markets.setdefault(exporter, set()).add(market)
            self.pairs += 1
            self.refused.discard((exporter, market))
        _set(self.ratio, (exporter, market), snapshot["response_48h"].get("ratio"))
        _set(self.rate, (exporter, market), snapshot["parts_inventory"].get("rate"))
        _set(self.rescue, (exporter, market), snapshot["emergency_coverage"].get("rescue_outlets"))
        for part in parts_of(dict(snapshot)):
            if part.obligation in PAIR_OBLIGATIONS or part.obligation == "network_size":
                label = ALL_MARKETS if part.market == EXPORTER_WIDE else part.market
                _set(self.met, (exporter, label, part.obligation), None if part.met is None else float(part.met))
        return True

    def drop(self, exporters: Iterable[str]) -> None:
        """Remove every series of these exporters (their partition moved to another worker)."""
        for exporter in exporters:
            markets = self.markets.pop(exporter, set())
            self.pairs -= len(markets)
            for market in markets:
                for gauge in (self.ratio, self.rate, self.rescue):
                    gauge.remove(exporter, market)
                for obligation in PAIR_OBLIGATIONS:
                    self.met.remove(exporter, market, obligation)
            self.met.remove(exporter, ALL_MARKETS, "network_size")
            self.refused = {pair for pair in self.refused if pair[0] != exporter}

    def _refuse(self, exporter: str, market: str) -> None:
        if (exporter, market) in self.refused:
            return
        self.refused.add((exporter, market))
        self.dropped.inc()
        if not self._warned:
            self._warned = True
            log.warning("compliance gauges of %s in %s not exported: this worker already exports %d exporter-market "
                        "pairs (MONITOR_METRICS_MAX_SERIES); further pairs are counted in "
                        "monitor_compliance_series_dropped_total and not logged", exporter, market, self.max_pairs,
                        extra={"exporter_id": exporter, "market": market})


def _set(gauge: Gauge, labels: tuple[str, ...], value: float | None) -> None:
    """Set a labelled series, or remove it while its figure is undefined (absent, not NaN)."""
    if value is None:
        gauge.remove(*labels)
    else:
        gauge.labels(*labels).set(value)


def merge_pages(own: bytes, other: bytes) -> bytes:
    """One /metrics page of a worker's two stages (`own`, and `other` from the process it started).

    Each series is counted by one stage or both (the event loop's lag): counters, histograms and
    gauges are added up (a gauge a stage does not set reads 0 there; a `_created` time is the
    earlier one). The process and Python series are `own`'s: they describe the process that
    serves the page. Both pages come from prometheus_client (one family block after the other,
    a series' labels in the same order in both), so they are merged line by line: parsing them
    into metric families cost the judging stage a tenth of its time when scraped every 0.2 s.
    """
    from prometheus_client.utils import floatToGoString

    families = _family_blocks(own)
    for name, (header, series) in _family_blocks(other).items():
        if name.startswith(("process_", "python_")):
            continue
        mine = families.get(name)
        if mine is None:
            families[name] = (header, series)
            continue
        kept = mine[1]
        for key, value in series.items():
            if key not in kept:
                kept[key] = value
            elif key.split("{", 1)[0].endswith("_created"):
                kept[key] = floatToGoString(min(float(kept[key]), float(value)))
            else:
                kept[key] = floatToGoString(float(kept[key]) + float(value))
    lines = [line for header, series in families.values()
             for line in (*header, *(f"{key} {value}" for key, value in series.items()))]
    return ("\n".join(lines) + "\n").encode() if lines else b""


def _family_blocks(page: bytes) -> dict[str, tuple[list[str], dict[str, str]]]:
    """A prometheus_client page as {family: (its # lines, {series: value})}, in the page's order."""
    families: dict[str, tuple[list[str], dict[str, str]]] = {}
    current: tuple[list[str], dict[str, str]] | None = None
    for line in page.decode().splitlines():
        if line.startswith("# HELP "):
            current = families.setdefault(line.split(" ", 3)[2], ([], {}))
            current[0].append(line)
        elif line.startswith("#"):
            if current is not None:
                current[0].append(line)
        elif line and current is not None:
            key, _, value = line.rpartition(" ")
            current[1][key] = value
    return families


async def fetch_page(url: str, timeout: float = 2.0) -> bytes | None:
    """Another process's /metrics page; None when it does not answer (starting, or busy)."""
    import aiohttp

    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session, \
                session.get(url) as answer:
            answer.raise_for_status()
            return await answer.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.debug("the metrics of %s could not be read: %r", url, exc)
        return None
