"""`monitor api` under concurrent load: latency (p50, p90, p99, max) and requests/s of the read
routes, beside `GET /healthz` (no store) under the same load in the same run, on SQLite and PostgreSQL.

    python bench/api_bench.py                      # 100 exporters x 30 markets, a licence year; 8 s windows
    python bench/api_bench.py --quick              # 20 exporters, 3 s windows: a smoke run (~5 minutes a backend)
    python bench/api_bench.py --backends sqlite --exporters 50 --clients 1,16,64
    python bench/api_bench.py --json /tmp/api.json # also write every figure as JSON

For each backend:

1. **fill**: a fresh history store (a SQLite file in a temporary directory; a database made for
   the run on the PostgreSQL server, dropped at the end), schema by the store's own migrations
   (`HistoryStore.open`), holding a synthetic licence year (2026, UTC days): exporters x 30 markets,
   two ComplianceSnapshots per exporter and day (00:30 and 23:30 UTC, as the worker publishes
   them, every market at the same instant), folded into `daily_figures` rows the way the store
   folds them (`monitor.history.daily`): one row per exporter, market, obligation and day, and
   one exporter-wide ("*") network_size row per exporter and day; the latest snapshot of each
   exporter and market in `compliance_latest`; alerts of every obligation spread over the year
   (most opened and resolved, some still open, a few retracted), each transition hash-chained per
   exporter (`monitor.history.chain`) in `alert_transitions`, with `alerts` and `chain_heads`
   beside them; the registrations (a fifth of the exporters are distributors, each authorised
   by one or two automakers) and the default policy version through the store's own methods.
   The store's `record_batch` costs milliseconds per snapshot, far too slow for a year of them,
   so the rows are bulk-inserted with SQLAlchemy core into the store's tables (the models of
   `monitor.history.tables`), several exporters per transaction. First, a sample (one
   exporter, 3 markets, 6 days, and its alerts) goes through `record_batch` into a scratch store
   and must come out equal to the bulk rows built from the same documents; that also times
   `record_batch`, to say what filling the year through it would have cost. After the fill,
   every exporter's hash chain is verified with `HistoryStore.verify_chain`; on PostgreSQL the
   tables are then vacuumed and analysed (what autovacuum does on its own after a bulk load).
2. **store calls alone**: each store read the routes make, timed in this process (median of 5).
3. **load**: `monitor api` (one uvicorn process, as deployed) on a free loopback port, and N
   concurrent clients (httpx.AsyncClient, one keep-alive connection each), each sending its
   next request as soon as the last is answered (a closed loop). Each measurement starts once
   every client has had an answer (and at least the warm-up has passed) and lasts the window,
   longer if need be (up to 5 windows, or 30 s) until two requests per client were answered in
   it, so a slow route is seen under its full load. Latency is from sending the request to the
   last byte of the body; requests/s are the answers given in the window. Routes, each with a
   regulator token (sees every exporter) and an automaker token (EXP-001 and the distributors
   it authorised):
   - `GET /healthz`: the baseline, no token, no store: what the server and the load generator
     cost on their own;
   - `GET /api/v1/compliance`, all and `?exporter=EXP-001`;
   - `GET /api/v1/alerts`, the first page (100) and a filtered page
     (`?exporter=EXP-001&obligation=response_48h&status=resolved`);
   - `GET /api/v1/exporters/EXP-001/history?obligation=parts_inventory&from=…&to=…`: the whole
     year of one obligation in every market (markets x 365 rows).

The server, PostgreSQL and this load generator share the machine's cores: the CPU columns say
how much of a core the server and the load generator used during each window. Absolute figures
vary from machine to machine; compare them with the /healthz baseline of the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
ADMIN_DSN = os.environ.get("MONITOR_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
YEAR = 2026
DAYS = 365
MARKETS = ("AE", "AR", "AU", "BR", "CL", "CO", "EG", "ES", "GB", "GR", "ID", "IL", "IN", "IT", "JO",
           "KE", "KZ", "MA", "MX", "MY", "NG", "NZ", "PE", "PH", "PK", "SA", "SG", "TH", "TR", "ZA")
FULL_EXPORTERS, QUICK_EXPORTERS = 100, 20
ALERTS_PER_EXPORTER = 200  # 20,000 for 100 exporters
POLICY_VERSION = "2026.1"
ALERTS_TOPIC, COMPLIANCE_TOPIC = "aftersales.alerts", "aftersales.compliance"
EXPORTERS_PER_TRANSACTION = 5  # ~166,000 daily rows per transaction
WMI_LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"  # the characters a VIN may hold
TICKS = os.sysconf("SC_CLK_TCK")
SLOW_P50_MS = 100.0  # a route slower than this at 16 clients is worth a look


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def stamp(moment: datetime) -> str:
    """RFC 3339 in UTC with a Z, as the monitor writes every instant."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# ---- the synthetic licence year: documents as the worker publishes them -----------------------------


@dataclass(frozen=True)
class Year:
    """A licence year of `exporters` exporters, each in every market of MARKETS."""

    exporters: int
    alerts: int
    seed: int
    days: int = DAYS

    @property
    def ids(self) -> list[str]:
        return [f"EXP-{i:03d}" for i in range(1, self.exporters + 1)]

    @property
    def distributors(self) -> int:
        return self.exporters // 5 if self.exporters >= 2 else 0

    @property
    def first_day(self) -> date:
        return date(YEAR, 1, 1)

    def day_list(self) -> list[date]:
        return [self.first_day + timedelta(days=n) for n in range(self.days)]


def _wmi(index: int) -> str:
    n = len(WMI_LETTERS)
    return "L" + WMI_LETTERS[(index // n) % n] + WMI_LETTERS[index % n]


def registrations(year: Year) -> list[dict[str, Any]]:
    """ExporterRegistration documents: automakers first, then distributors each authorised by one or two."""
    ids = year.ids
    automakers = ids[: len(ids) - year.distributors]
    documents = []
    for index, exporter_id in enumerate(ids):
        wmi = _wmi(index)
        majors = sorted({MARKETS[index % len(MARKETS)], MARKETS[(index + 11) % len(MARKETS)]})
        document: dict[str, Any] = {
            "exporter_id": exporter_id, "name": f"Exporter {index + 1:03d} New Energy Co., Ltd.",
            "role": "automaker", "category": "I" if index % 2 == 0 else "II", "authorised_by": [],
            "brands": [{"name": f"Brand{index + 1:03d}", "wmi": [wmi]}],
            "licence": {"number": f"EVX-{YEAR}-{index + 1:05d}", "valid_from": f"{YEAR}-01-01",
                        "valid_to": f"{YEAR}-12-31"},
            "major_markets": majors,
            "common_parts": {"*": [f"{wmi}-P{n:03d}" for n in range(12)], majors[0]: [f"{wmi}-{majors[0]}-001"]},
        }
        if exporter_id not in automakers:
            k = index - len(automakers)
            document["role"] = "authorised_distributor"
            document["authorised_by"] = sorted({automakers[k % len(automakers)],
                                                automakers[(7 * k + 3) % len(automakers)]})
        documents.append(document)
    return documents


@dataclass
class _MarketState:
    catalogue: int
    major: bool
    compliant: int = 0
    breached: int = 0
    withdrawn: int = 0
    pending: int = 0
    stocked: int = 0
    active: int = 0
    rescue: int = 0


def snapshot_days(year: Year, registration: dict[str, Any], markets: tuple[str, ...] = MARKETS,
                  days: list[date] | None = None) -> Iterator[tuple[date, list[tuple[datetime, dict[str, Any]]]]]:
    """Each day's ComplianceSnapshot documents of one exporter, in the order published: every
    market at 00:30, then every market at 23:30 (figures changed in between). The figures drift
    from day to day: response counts grow, stock and outlets move, so obligations come and go."""
    exporter_id = registration["exporter_id"]
    rng = random.Random(f"{year.seed}/{exporter_id}")
    extra_parts = {k for k in registration["common_parts"] if k != "*"}
    states = {m: _MarketState(catalogue=12 + (m in extra_parts), major=m in registration["major_markets"])
              for m in sorted(markets)}
    for state in states.values():
        state.stocked = rng.randint(2, state.catalogue)
        state.active = rng.randint(3, 30)
        state.rescue = rng.randint(0, 3)
    required = 51 if registration["category"] == "I" else None
    network = rng.randint(35, 70)
    offset = timedelta(seconds=int(exporter_id[-3:]) % 60)

    def documents(clock: datetime) -> list[tuple[datetime, dict[str, Any]]]:
        network_figure = {"active_outlets": network, "required": required,
                          "compliant": None if required is None else network >= required}
        out = []
        for market, s in states.items():
            decided = s.compliant + s.breached
            p50 = round(rng.uniform(3.0, 20.0), 2) if decided else None
            out.append((clock, {
                "exporter_id": exporter_id, "market": market,
                "response_48h": {"compliant": s.compliant, "breached": s.breached, "withdrawn": s.withdrawn,
                                 "pending": s.pending, "ratio": s.compliant / decided if decided else None,
                                 "p50_hours": p50, "p95_hours": None if p50 is None else round(p50 + 20.5, 2)},
                "parts_inventory": {"catalogue": s.catalogue, "stocked": s.stocked,
                                    "rate": s.stocked / s.catalogue, "compliant": s.stocked / s.catalogue >= 0.2},
                "emergency_coverage": {"active_outlets": s.active, "rescue_outlets": s.rescue,
                                       "covered": s.rescue >= 1, "major_market": s.major},
                "network_size": network_figure, "as_of": stamp(clock), "policy_version": POLICY_VERSION,
            }))
        return out

    for day in days if days is not None else year.day_list():
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
        morning = documents(midnight + timedelta(minutes=30) + offset)
        for s in states.values():
            s.compliant += rng.randint(0, 6)
            s.breached += rng.random() < 0.06
            s.withdrawn += rng.random() < 0.02
            s.pending = rng.randint(0, 3)
            s.stocked = min(s.catalogue, max(0, s.stocked + rng.choice((-1, 0, 0, 0, 1))))
            s.active = max(1, s.active + rng.choice((-1, 0, 0, 1)))
            s.rescue = max(0, min(4, s.rescue + rng.choice((-1, 0, 0, 0, 0, 0, 1))))
        network = max(20, network + rng.choice((-1, 0, 0, 1)))
        yield day, morning + documents(midnight + timedelta(hours=23, minutes=30) + offset)


def daily_rows(day_documents: Iterator[tuple[date, list[tuple[datetime, dict[str, Any]]]]]
               ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The `daily_figures` rows the store keeps for these snapshots (of one exporter, every day
    present), folded as `HistoryStore._store_day` folds them; and the latest snapshot per market."""
    from monitor.history.daily import held_throughout, parts_of

    rows: list[dict[str, Any]] = []
    last: dict[tuple[str, str], dict[str, Any]] = {}
    latest: dict[str, dict[str, Any]] = {}
    for day, documents in day_documents:
        today: dict[tuple[str, str], dict[str, Any]] = {}
        for as_of, document in documents:
            latest[document["market"]] = {"as_of": as_of, "snapshot": document}
            for part in parts_of(document):
                key = (part.market, part.obligation)
                row = today.get(key)
                if row is None:
                    before = last.get(key)
                    start = before["met"] if before is not None else part.met
                    today[key] = {"exporter_id": document["exporter_id"], "market": part.market,
                                  "obligation": part.obligation, "day": day, "figure": part.figure, "met": part.met,
                                  "met_all_day": held_throughout(start, part.met), "first_as_of": as_of,
                                  "last_as_of": as_of, "policy_version": document["policy_version"],
                                  "carried": False}
                    continue
                row["met_all_day"] = held_throughout(row["met_all_day"], part.met)
                row["first_as_of"] = min(row["first_as_of"], as_of)
                if as_of >= row["last_as_of"]:
                    row["figure"], row["met"], row["last_as_of"] = part.figure, part.met, as_of
                    row["policy_version"] = document["policy_version"]
        last.update(today)
        rows.extend(today.values())
    return rows, latest


# the obligations alerts are about, and how often
ALERT_MIX = (("response_48h", 0.70), ("parts_inventory", 0.10), ("emergency_coverage", 0.08),
             ("network_size", 0.04), ("authorisation", 0.08))


def _evidence(rng: random.Random, obligation: str, severity: str, subject: str, wmi: str, opened: datetime
              ) -> dict[str, Any]:
    cause = {"kind": "event", "at": stamp(opened), "event_id": f"o-{rng.randrange(10**10):010d}"}
    if obligation == "response_48h":
        start = opened - (timedelta(hours=36) if severity == "warning" else timedelta(hours=48))
        ticket = subject.split("#", maxsplit=1)[0]
        evidence: dict[str, Any] = {
            "ticket_id": ticket, "cycle": 1, "vin": f"{wmi}K4LKB9TB{rng.randrange(10**6):06d}",
            "start": {"event_id": f"t-{rng.randrange(10**10):010d}", "type": "opened", "occurred_at": stamp(start)},
            "deadline": stamp(start + timedelta(hours=48)), "answer": None, "cancellation": None}
        if severity == "warning":
            evidence["at_risk_from"] = stamp(opened)
        return evidence
    if obligation == "parts_inventory":
        missing = sorted(f"{wmi}-P{n:03d}" for n in rng.sample(range(12), 11))
        return {"catalogue": 12, "stocked": 1, "rate": round(1 / 12, 4), "compliant": False, "min_rate": 0.2,
                "min_quantity": 1, "quantities": dict.fromkeys(missing, 0), "missing_parts": missing,
                "cause": cause}
    if obligation == "emergency_coverage":
        return {"active_outlets": rng.randint(1, 20), "rescue_outlets": 0, "outlets": [], "cause": cause}
    if obligation == "network_size":
        return {"active_outlets": rng.randint(35, 50), "required": 51, "category": "I", "cause": cause}
    vin = f"SALK4LKB5SB{rng.randrange(10**6):06d}"
    return {"reason": "the VIN's manufacturer code is not among the exporter's authorised brands",
            "ticket_id": subject.split("/", maxsplit=1)[0], "vin": vin, "wmi": "SAL", "authorised_wmis": [wmi],
            "first_event": {"event_id": f"t-{rng.randrange(10**10):010d}", "occurred_at": stamp(opened)}}


@dataclass
class AlertRows:
    transitions: list[dict[str, Any]]
    alerts: list[dict[str, Any]]
    heads: list[dict[str, Any]]
    messages: list[tuple[dict[str, Any], tuple[str, int, int]]]  # (message, source) in the order stored


def alert_rows(year: Year, registered: list[dict[str, Any]]) -> AlertRows:
    """`year.alerts` alerts spread over the exporters and the year, and the store's rows for their
    transitions: ~85 % opened then resolved, ~13 % still open, ~2 % opened then retracted."""
    from monitor.contracts.outputs import Obligation, Severity
    from monitor.history.chain import transition_hash
    from monitor.obligations.alerts import alert_id
    from monitor.obligations.timebase import to_micros

    rng = random.Random(f"{year.seed}/alerts")
    by_id = {r["exporter_id"]: r for r in registered}
    accountable = {r["exporter_id"]: [r["exporter_id"], *r["authorised_by"]] for r in registered}
    start = datetime(YEAR, 1, 1, tzinfo=UTC)
    end = start + timedelta(days=year.days)
    obligations, weights = zip(*ALERT_MIX, strict=True)
    events: list[tuple[datetime, int, dict[str, Any]]] = []  # (raised_at, alert number, message)
    for number in range(year.alerts):
        exporter_id = rng.choice(year.ids)
        registration = by_id[exporter_id]
        wmi = registration["brands"][0]["wmi"][0]
        obligation = rng.choices(obligations, weights)[0]
        if obligation == "network_size" and registration["category"] != "I":
            obligation = "parts_inventory"  # no minimum for the category: no such alert
        market = None if obligation == "network_size" else rng.choice(MARKETS)
        severity = "warning" if obligation == "response_48h" and rng.random() < 0.6 else "breach"
        opened = start + timedelta(seconds=rng.uniform(0, (end - start).total_seconds() - 86_400 * 3))
        opened = opened.replace(microsecond=0)
        subject = {"response_48h": f"T-{exporter_id[-3:]}-{market}-{number:07d}#1",
                   "authorisation": f"T-{exporter_id[-3:]}-{market}-{number:07d}/SALK4LKB5SB{number:06d}",
                   "network_size": "network"}.get(obligation, market or "network")
        identity = alert_id(exporter_id, Obligation(obligation), market, subject, Severity(severity),
                            to_micros(opened))
        evidence = _evidence(rng, obligation, severity, subject, wmi, opened)
        message: dict[str, Any] = {
            "alert_id": identity, "exporter_id": exporter_id, "market": market, "obligation": obligation,
            "severity": severity, "status": "open", "subject": subject, "opened_at": stamp(opened),
            "resolved_at": None, "raised_at": stamp(opened + timedelta(milliseconds=rng.randint(40, 900))),
            "renewal_relevant": severity == "breach", "policy_version": POLICY_VERSION,
            "accountable": accountable[exporter_id], "evidence": evidence}
        events.append((datetime.fromisoformat(message["raised_at"]), number, message))
        outcome = rng.random()
        if outcome < 0.85:
            hours = 12 if obligation == "response_48h" and severity == "warning" else rng.uniform(0.2, 60)
            resolved = (opened + timedelta(hours=hours)).replace(microsecond=0)
            if resolved < end:
                answer = {"kind": "event", "at": stamp(resolved), "event_id": f"e-{rng.randrange(10**10):010d}"}
                later = {**message, "status": "resolved", "resolved_at": stamp(resolved),
                         "raised_at": stamp(resolved + timedelta(milliseconds=rng.randint(40, 900))),
                         "evidence": {**evidence, "resolved_by": answer}}
                events.append((datetime.fromisoformat(later["raised_at"]), number, later))
        elif outcome < 0.87:
            retracted = opened + timedelta(hours=rng.uniform(1, 30))
            events.append((retracted, number, {**message, "status": "retracted", "raised_at": stamp(retracted)}))

    events.sort(key=lambda e: (e[0], e[1]))
    rows = AlertRows([], [], [], [])
    heads: dict[str, dict[str, Any]] = {}
    alerts: dict[str, dict[str, Any]] = {}
    offsets = [0] * 6
    for seq, (_, _, message) in enumerate(events, start=1):
        exporter_id = message["exporter_id"]
        partition = int(exporter_id[-3:]) % len(offsets)
        source = (ALERTS_TOPIC, partition, offsets[partition])
        offsets[partition] += 1
        head = heads.get(exporter_id)
        prev_hash = head["last_hash"] if head is not None else ""
        digest = transition_hash(prev_hash, message)
        opened_at = datetime.fromisoformat(message["opened_at"])
        resolved_at = datetime.fromisoformat(message["resolved_at"]) if message["resolved_at"] else None
        raised_at = datetime.fromisoformat(message["raised_at"])
        columns = {"exporter_id": exporter_id, "market": message["market"], "obligation": message["obligation"],
                   "severity": message["severity"], "status": message["status"], "subject": message["subject"],
                   "opened_at": opened_at, "resolved_at": resolved_at, "raised_at": raised_at,
                   "policy_version": message["policy_version"], "message": message}
        rows.transitions.append({"seq": seq, "alert_id": message["alert_id"], **columns,
                                 "source_topic": source[0], "source_partition": source[1],
                                 "source_offset": source[2], "prev_hash": prev_hash, "hash": digest})
        rows.messages.append((message, source))
        if head is None:
            heads[exporter_id] = {"exporter_id": exporter_id, "last_seq": seq, "last_hash": digest, "count": 1}
        else:
            head.update(last_seq=seq, last_hash=digest, count=head["count"] + 1)
        alert = alerts.get(message["alert_id"])
        projection = {**columns, "changed_at": raised_at, "renewal_relevant": message["renewal_relevant"],
                      "last_seq": seq}
        if alert is None:
            alerts[message["alert_id"]] = {"alert_id": message["alert_id"], **projection, "transitions": 1}
        else:
            alert.update(projection, transitions=alert["transitions"] + 1)
    rows.alerts = list(alerts.values())
    rows.heads = list(heads.values())
    return rows


# ---- filling a store ---------------------------------------------------------------------------------


@dataclass
class Fill:
    seconds: float = 0.0
    build_seconds: float = 0.0  # documents and rows made in Python
    insert_seconds: float = 0.0  # waiting for the database
    daily_rows: int = 0
    latest_rows: int = 0
    alerts: int = 0
    transitions: int = 0
    registrations: int = 0
    chains_verified: int = 0
    chains: int = 0
    size_mb: float | None = None
    record_batch_per_second: float | None = None  # snapshots/s through the store's own record_batch
    analysed: bool = False


def _engine(url: str) -> Any:
    """An engine like the store's (same JSON text), for the bulk inserts."""
    import orjson
    from sqlalchemy.ext.asyncio import create_async_engine

    from monitor.history.chain import canonical_json

    return create_async_engine(url, json_serializer=canonical_json, json_deserializer=orjson.loads)


async def fill(url: str, year: Year) -> Fill:
    """Fill the (new, empty) store at `url` with the year; return what it holds and how long it took."""
    from monitor.contracts.policy import DEFAULT_POLICY
    from monitor.history.store import REGISTRATION, HistoryStore, Source, applied_policies
    from monitor.history.tables import Alert, AlertTransition, ChainHead, ComplianceLatest, DailyFigure
    from monitor.obligations.policy import PolicyBook

    result = Fill()
    started = time.perf_counter()
    store = await HistoryStore.open(url)  # the schema, by the migrations
    try:
        registered = registrations(year)
        await store.record_batch([(REGISTRATION, r, Source("aftersales.registry", 0, n))
                                  for n, r in enumerate(registered)])
        await store.record_policies(applied_policies(PolicyBook(DEFAULT_POLICY).describe([POLICY_VERSION])))
        result.registrations = len(registered)
    finally:
        await store.close()

    engine = _engine(url)
    daily, latest = DailyFigure.__table__, ComplianceLatest.__table__
    try:
        for first in range(0, len(registered), EXPORTERS_PER_TRANSACTION):
            chunk = registered[first:first + EXPORTERS_PER_TRANSACTION]
            built = time.perf_counter()
            rows: list[dict[str, Any]] = []
            latest_rows: list[dict[str, Any]] = []
            for registration in chunk:
                exporter_rows, newest = daily_rows(snapshot_days(year, registration))
                rows.extend(exporter_rows)
                latest_rows.extend({"exporter_id": registration["exporter_id"], "market": market,
                                    "as_of": value["as_of"], "policy_version": value["snapshot"]["policy_version"],
                                    "snapshot": value["snapshot"]} for market, value in newest.items())
            inserting = time.perf_counter()
            result.build_seconds += inserting - built
            async with engine.begin() as connection:
                await connection.execute(daily.insert(), rows)
                await connection.execute(latest.insert(), latest_rows)
            result.insert_seconds += time.perf_counter() - inserting
            result.daily_rows += len(rows)
            result.latest_rows += len(latest_rows)
            done = first + len(chunk)
            elapsed = time.perf_counter() - started
            progress(f"  daily figures: {done}/{len(registered)} exporters, {result.daily_rows:,} rows "
                     f"({elapsed:.0f} s, about {elapsed / done * (len(registered) - done):.0f} s to go)")

        built = time.perf_counter()
        alerts = alert_rows(year, registered)
        inserting = time.perf_counter()
        result.build_seconds += inserting - built
        async with engine.begin() as connection:
            for table, values in ((AlertTransition.__table__, alerts.transitions), (Alert.__table__, alerts.alerts),
                                  (ChainHead.__table__, alerts.heads)):
                for at in range(0, len(values), 20_000):
                    await connection.execute(table.insert(), values[at:at + 20_000])
            if connection.dialect.name == "postgresql":  # rows given their seq: the sequence goes on after them
                await connection.exec_driver_sql(
                    "SELECT setval(pg_get_serial_sequence('alert_transitions', 'seq'), "
                    "(SELECT max(seq) FROM alert_transitions))")
        result.insert_seconds += time.perf_counter() - inserting
        result.alerts, result.transitions = len(alerts.alerts), len(alerts.transitions)
        progress(f"  alerts: {result.alerts:,} alerts, {result.transitions:,} transitions")

        if engine.dialect.name == "postgresql":
            progress("  VACUUM ANALYZE (what autovacuum does after a bulk load)")
            analysing = time.perf_counter()
            async with engine.connect() as connection:
                await connection.execution_options(isolation_level="AUTOCOMMIT")
                await connection.exec_driver_sql("VACUUM ANALYZE")
            result.insert_seconds += time.perf_counter() - analysing
            result.analysed = True
    finally:
        await engine.dispose()
    result.seconds = time.perf_counter() - started

    store = await HistoryStore.open(url)
    try:
        progress("  verifying every exporter's hash chain")
        for exporter_id in year.ids:
            check = await store.verify_chain(exporter_id)
            result.chains += 1
            result.chains_verified += check.ok
    finally:
        await store.close()
    return result


async def sample_check(year: Year, directory: Path) -> float:
    """Put a sample through the store's own `record_batch` into a scratch SQLite store and check it
    comes out as the bulk rows built from the same documents; returns record_batch's snapshots/s.

    Raises AssertionError naming what differs."""
    from monitor.history.store import ALERT, SNAPSHOT, HistoryStore, Source

    registration = registrations(year)[0]
    markets, days = MARKETS[:3], year.day_list()[:6]
    documents = list(snapshot_days(year, registration, markets, days))
    expected_rows, expected_latest = daily_rows(iter(documents))
    url = f"sqlite+aiosqlite:///{directory / 'sample.sqlite3'}"
    store = await HistoryStore.open(url)
    try:
        items = [(SNAPSHOT, document, Source(COMPLIANCE_TOPIC, 0, n))
                 for n, (_, document) in enumerate(d for _, day in documents for d in day)]
        started = time.perf_counter()
        for at in range(0, len(items), 30):  # batches of the size the sink commits at a low rate
            await store.record_batch(items[at:at + 30])
        rate = len(items) / (time.perf_counter() - started)
        stored = await store.history(registration["exporter_id"])
        order = sorted(expected_rows, key=lambda r: (r["day"], r["market"], r["obligation"]))
        if stored != order:
            raise AssertionError("the bulk daily_figures rows differ from what record_batch stores")
        snapshots = await store.compliance(exporters=None)
        if snapshots != [expected_latest[m]["snapshot"] for m in sorted(expected_latest)]:
            raise AssertionError("the bulk compliance_latest rows differ from what record_batch stores")

        alerts = alert_rows(Year(year.exporters, min(year.alerts, 2000), year.seed), registrations(year))
        mine = registration["exporter_id"]
        await store.record_batch([(ALERT, message, Source(*source)) for message, source in alerts.messages
                                  if message["exporter_id"] == mine])
        page, _ = await store.alerts(exporters={mine}, limit=1000)
        wanted = sorted((a for a in alerts.alerts if a["exporter_id"] == mine),
                        key=lambda a: (a["opened_at"], a["alert_id"]))
        if page != [a["message"] for a in wanted]:
            raise AssertionError("the bulk alerts rows differ from what record_batch stores")
        for alert in wanted[:20]:
            hashes = [(t["hash"], t["prev_hash"]) for t in await store.transitions(alert["alert_id"])]
            built = [(t["hash"], t["prev_hash"]) for t in alerts.transitions if t["alert_id"] == alert["alert_id"]]
            if hashes != built:
                raise AssertionError(f"the hash chain of alert {alert['alert_id']} differs from record_batch's")
        if not (await store.verify_chain(mine)).ok:
            raise AssertionError("record_batch's own chain does not verify")
    finally:
        await store.close()
    return rate


# ---- databases -----------------------------------------------------------------------------------------


async def _admin(statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(ADMIN_DSN, timeout=10)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def postgres_url(database: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(ADMIN_DSN).set(drivername="postgresql+asyncpg", database=database).render_as_string(
        hide_password=False)


def sqlite_size_mb(path: Path) -> float:
    files = [path, path.with_name(path.name + "-wal")]
    return sum(f.stat().st_size for f in files if f.exists()) / 1e6


async def postgres_size_mb(database: str) -> float | None:
    import asyncpg

    connection = await asyncpg.connect(ADMIN_DSN, timeout=10)
    try:
        size = await connection.fetchval("SELECT pg_database_size($1)", database)
        return float(size) / 1e6 if size is not None else None
    finally:
        await connection.close()


# ---- the store's reads alone -------------------------------------------------------------------------


async def store_calls(url: str, probe: Probe) -> list[tuple[str, float]]:
    """Median milliseconds of each store read the routes make (5 calls each, after one unmeasured)."""
    from monitor.history.store import HistoryStore

    store = await HistoryStore.open(url)
    year_start, year_end = date(YEAR, 1, 1), date(YEAR, 12, 31)
    calls: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        ("registrations()  [every /api/v1 request]", store.registrations),
        ("exporters()  [every request naming an exporter]", store.exporters),
        ("compliance(all)", lambda: store.compliance(exporters=None)),
        (f"compliance(exporter={probe.exporter})", lambda: store.compliance(exporters=None, exporter=probe.exporter)),
        ("alerts(first page of 100)", lambda: store.alerts(exporters=None)),
        ("alerts(exporter, obligation, status)",
         lambda: store.alerts(exporters=None, exporter=probe.exporter, obligation="response_48h", status="resolved")),
        ("history(exporter, obligation, the year)",
         lambda: store.history(probe.exporter, obligation="parts_inventory", start=year_start, end=year_end)),
    ]
    timings = []
    try:
        for name, call in calls:
            await call()
            seconds = []
            for _ in range(5):
                started = time.perf_counter()
                await call()
                seconds.append(time.perf_counter() - started)
            timings.append((name, statistics.median(seconds) * 1000))
    finally:
        await store.close()
    return timings


# ---- the server and the load -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS


class Server:
    """`monitor api` in a process of its own (its own session), stopped by its pid."""

    def __init__(self, url: str, tokens: Path, workdir: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"api-{self.port}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
        env.update(MONITOR_DATABASE_URL=url, MONITOR_API_TOKENS=str(tokens), MONITOR_DATA_DIR=str(workdir / "data"),
                   MONITOR_KAFKA_BOOTSTRAP="127.0.0.1:1")  # no broker: only /readyz would ask for one
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "monitor", "api", "--host", "127.0.0.1", "--port", str(self.port)],
                env=env, cwd=workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.process.pid

    async def ready(self, client: Any, timeout: float = 60.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"monitor api exited with {self.process.returncode}: {self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{self.base}/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"monitor api did not answer /healthz within {timeout:.0f} s: {self.tail()}")

    def tail(self) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.process.wait(10)


@dataclass
class Probe:
    """What the routes ask about: one exporter, the year, and the two callers' tokens."""

    exporter: str
    regulator: str
    automaker: str
    automaker_sees: list[str]


@dataclass
class Cell:
    backend: str
    route: str
    token: str
    clients: int
    requests: int = 0
    seconds: float = 0.0
    per_second: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    kb_per_response: float = 0.0
    server_cpu: float | None = None  # share of one core
    client_cpu: float | None = None
    errors: dict[str, int] = field(default_factory=dict)


def percentile(ordered: list[float], share: float) -> float:
    """The nearest-rank percentile of sorted values."""
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(share * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass
class Window:
    latencies: list[float]  # seconds, of the requests sent in the window, sorted
    completed: int  # requests answered within the window (whenever sent)
    seconds: float
    size: int  # bytes of the bodies of `latencies`' requests
    errors: dict[str, int]
    server_cpu: float | None
    client_cpu: float


async def load(server: Server, path: str, headers: dict[str, str], clients: int, seconds: float,
               warm_up: float, cap: float) -> Window:
    """`clients` clients asking for `path` back to back (a closed loop), each an httpx.AsyncClient
    of its own with one keep-alive connection, made for this measurement. (One AsyncClient shared by
    64 tasks spends milliseconds of CPU per request in its connection pool: at 64 clients it could
    not send more than ~150 requests/s on this machine, a bottleneck of its own.)

    Warm-up: at least `warm_up` seconds and until every client has had an answer, so the window
    starts with the server under the full load. The window then lasts `seconds`, longer if need be
    (up to `cap`) until 2 requests per client were answered in it, so that a slow route is seen
    through several rounds. Latencies are those of the requests sent in the window; the rate is
    of the answers given in it.
    """
    import httpx

    url = server.base + path
    begun = time.perf_counter()
    state: dict[str, Any] = {"from": None, "to": None, "warmed": 0, "completed": 0, "size": 0}
    latencies: list[float] = []
    errors: dict[str, int] = {}
    wanted = 2 * clients

    def now_window(moment: float) -> None:
        if state["from"] is None and state["warmed"] >= clients and moment >= begun + warm_up:
            state["from"] = moment
            state["cpu_from"] = (cpu_seconds(server.pid), time.process_time())

    def ended(moment: float) -> bool:
        if state["to"] is not None:
            return True
        start = state["from"]
        if start is None:
            return False
        if moment - start >= cap or (moment - start >= seconds and state["completed"] >= wanted):
            state["to"] = moment
            state["cpu_to"] = (cpu_seconds(server.pid), time.process_time())
            return True
        return False

    async def client_loop(client: Any) -> None:
        first = True
        while True:
            sent = time.perf_counter()
            now_window(sent)
            if ended(sent):
                return
            in_window = state["from"] is not None
            try:
                answer = await client.get(url, headers=headers)
                status, body = answer.status_code, len(answer.content)
            except httpx.HTTPError as exc:
                status, body = type(exc).__name__, 0
            done = time.perf_counter()
            if first:
                state["warmed"] += 1
                first = False
            if state["from"] is not None and done >= state["from"] and (state["to"] is None or done <= state["to"]):
                state["completed"] += 1
            if in_window:
                if status == 200:
                    latencies.append(done - sent)
                    state["size"] += body
                else:
                    kind = f"HTTP {status}" if isinstance(status, int) else status
                    errors[kind] = errors.get(kind, 0) + 1

    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    pool = [httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(300.0)) for _ in range(clients)]
    try:
        await asyncio.gather(*(client_loop(client) for client in pool))
    finally:
        for client in pool:
            await client.aclose()
    window = state["to"] - state["from"]
    (server_start, client_start), (server_end, client_end) = state["cpu_from"], state["cpu_to"]
    server_cpu = (server_end - server_start) / window if server_start is not None and server_end is not None \
        else None
    latencies.sort()
    return Window(latencies, state["completed"], window, state["size"], errors, server_cpu,
                  (client_end - client_start) / window)


def routes(probe: Probe) -> list[tuple[str, str, str | None]]:
    """(label, path, token) of each measurement: the baseline first."""
    year_range = f"from={YEAR}-01-01&to={YEAR}-12-31"
    paths = [
        ("GET /api/v1/compliance (all)", "/api/v1/compliance"),
        ("GET /api/v1/compliance?exporter=", f"/api/v1/compliance?exporter={probe.exporter}"),
        ("GET /api/v1/alerts (first page)", "/api/v1/alerts"),
        ("GET /api/v1/alerts?exporter=&obligation=&status=",
         f"/api/v1/alerts?exporter={probe.exporter}&obligation=response_48h&status=resolved"),
        ("GET /api/v1/exporters/{id}/history (a year, 1 obligation)",
         f"/api/v1/exporters/{probe.exporter}/history?obligation=parts_inventory&{year_range}"),
    ]
    plan: list[tuple[str, str, str | None]] = [("GET /healthz (baseline: no token, no store)", "/healthz", None)]
    for label, path in paths:
        plan += [(label, path, "regulator"), (label, path, "automaker")]
    return plan


async def measure(backend: str, url: str, probe: Probe, tokens: Path, workdir: Path, clients_levels: list[int],
                  seconds: float, warm_up: float) -> tuple[list[Cell], dict[str, Any]]:
    """Every route at every number of clients against one `monitor api` on the store at `url`."""
    import httpx

    server = Server(url, tokens, workdir)
    cap = max(5 * seconds, 30.0)  # no window longer than this, however slow the route
    cells: list[Cell] = []
    shapes: dict[str, Any] = {}
    secret = {"regulator": probe.regulator, "automaker": probe.automaker}
    try:
        async with httpx.AsyncClient(timeout=httpx.Timeout(300.0)) as client:
            await server.ready(client)
            for label, path, token in routes(probe):
                headers = {"Authorization": f"Bearer {secret[token]}"} if token else {}
                answer = await client.get(server.base + path, headers=headers)  # opens the store on the first
                if answer.status_code != 200:
                    raise RuntimeError(f"{path} as {token}: HTTP {answer.status_code} {answer.text[:300]}")
                document = answer.json()
                if "items" in document:
                    shapes[f"{label} as {token}"] = len(document["items"])
                for clients in clients_levels:
                    progress(f"  {label} as {token or '-'}, {clients} clients")
                    w = await load(server, path, headers, clients, seconds, warm_up, cap)
                    n = len(w.latencies)
                    cells.append(Cell(
                        backend=backend, route=label, token=token or "-", clients=clients, requests=n,
                        seconds=w.seconds, per_second=w.completed / w.seconds,
                        p50_ms=percentile(w.latencies, 0.50) * 1000, p90_ms=percentile(w.latencies, 0.90) * 1000,
                        p99_ms=percentile(w.latencies, 0.99) * 1000,
                        max_ms=(w.latencies[-1] if n else float("nan")) * 1000,
                        kb_per_response=w.size / n / 1000 if n else 0.0, server_cpu=w.server_cpu,
                        client_cpu=w.client_cpu, errors=w.errors))
                    if server.process.poll() is not None:
                        raise RuntimeError(f"monitor api exited during the load: {server.tail()}")
    finally:
        server.stop()
    return cells, shapes


# ---- one backend, start to end -----------------------------------------------------------------------


@dataclass
class BackendRun:
    backend: str
    where: str
    fill: Fill | None = None
    store_calls: list[tuple[str, float]] = field(default_factory=list)
    cells: list[Cell] = field(default_factory=list)
    items: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None


async def run_backend(backend: str, year: Year, probe: Probe, tokens: Path, workdir: Path, clients: list[int],
                      seconds: float, warm_up: float) -> BackendRun:
    database = f"api_bench_{uuid.uuid4().hex[:10]}"
    sqlite_path: Path | None = None
    if backend == "sqlite":
        sqlite_path = workdir / "history.sqlite3"
        url = f"sqlite+aiosqlite:///{sqlite_path}"
        run = BackendRun(backend, str(sqlite_path))
    else:
        try:
            await _admin(f'CREATE DATABASE "{database}"')
        except Exception as exc:  # whatever keeps the server from being reached
            return BackendRun(backend, ADMIN_DSN, problem=f"no PostgreSQL server at {ADMIN_DSN}: {exc!r}")
        url = postgres_url(database)
        run = BackendRun(backend, f"database {database} on {ADMIN_DSN.rsplit('@', 1)[-1]} (dropped at the end)")
    try:
        progress(f"{backend}: filling the store ({year.exporters} exporters x {len(MARKETS)} markets x "
                 f"{year.days} days, {year.alerts:,} alerts)")
        run.fill = await fill(url, year)
        run.fill.size_mb = (sqlite_size_mb(sqlite_path) if sqlite_path is not None
                            else await postgres_size_mb(database))
        progress(f"{backend}: filled in {run.fill.seconds:.0f} s; timing the store's reads alone")
        run.store_calls = await store_calls(url, probe)
        run.cells, run.items = await measure(backend, url, probe, tokens, workdir, clients, seconds, warm_up)
    finally:
        if backend == "postgresql":
            with contextlib.suppress(Exception):
                await _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        elif sqlite_path is not None:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(OSError):
                    sqlite_path.with_name(sqlite_path.name + suffix).unlink()
    return run


# ---- the report --------------------------------------------------------------------------------------


def _ms(value: float) -> str:
    if math.isnan(value):  # nothing measured
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def print_backend(run: BackendRun, year: Year, probe: Probe, slow: list[str]) -> None:
    title = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}.get(run.backend, run.backend)
    print(f"\n=== {title}: {run.where}")
    if run.problem:
        print(f"not measured: {run.problem}")
        return
    f = run.fill
    if f is not None:
        size = f" ({f.size_mb:,.0f} MB)" if f.size_mb is not None else ""
        print(f"store{size}: {year.exporters} exporters x {len(MARKETS)} markets x {year.days} days of {YEAR}: "
              f"{f.daily_rows:,} daily_figures rows, {f.latest_rows:,} latest snapshots, {f.alerts:,} alerts with "
              f"{f.transitions:,} transitions, {f.registrations} registrations")
        verified = "every hash chain verifies" if f.chains_verified == f.chains else \
            f"ONLY {f.chains_verified} of {f.chains} hash chains verify"
        analysed = ", VACUUM ANALYZE included" if f.analysed else " (no ANALYZE: as a SQLite store runs)"
        print(f"filled in {f.seconds:,.1f} s: rows built in Python {f.build_seconds:,.1f} s, database "
              f"{f.insert_seconds:,.1f} s{analysed}; {verified}")
    if run.store_calls:
        print("store reads alone, in this process (median of 5):")
        for name, ms in run.store_calls:
            print(f"  {name:52s} {_ms(ms):>8s} ms")
    visible = ", ".join(probe.automaker_sees)
    print(f"\nrequests against `monitor api` (1 uvicorn process); automaker token: {visible}; "
          f"filtered routes ask about {probe.exporter}")
    header = (f"{'route':58s} {'token':9s} {'clients':>7s} {'requests':>8s} {'req/s':>7s} {'p50 ms':>7s} "
              f"{'p90 ms':>7s} {'p99 ms':>7s} {'max ms':>7s} {'KB/resp':>8s} {'server':>6s} {'client':>6s}")
    print(header)
    print("-" * len(header))
    previous = None
    for c in run.cells:
        route = c.route if (c.route, c.token) != previous else ""
        previous = (c.route, c.token)
        cpu = f"{c.server_cpu:6.0%}" if c.server_cpu is not None else f"{'-':>6s}"
        client_cpu = f"{c.client_cpu:6.0%}" if c.client_cpu is not None else f"{'-':>6s}"
        few = "~" if c.requests < 100 else " "  # p99 of fewer than 100 requests is about the max
        print(f"{route:58s} {c.token if route else '':9s} {c.clients:7d} {c.requests:8,d} {c.per_second:7,.0f} "
              f"{_ms(c.p50_ms):>7s} {_ms(c.p90_ms):>7s} {few}{_ms(c.p99_ms):>6s} {_ms(c.max_ms):>7s} "
              f"{c.kb_per_response:8,.1f} {cpu} {client_cpu}")
        if c.errors:
            print(f"{'':58s} errors: " + ", ".join(f"{k} x{v}" for k, v in sorted(c.errors.items())))
        if c.clients == 16 and c.route.startswith("GET /api") and c.p50_ms > SLOW_P50_MS:
            slow.append(f"{title}: {c.route} as {c.token}: p50 {c.p50_ms:,.0f} ms at 16 clients")
    if run.items:
        print("items per response: " + "; ".join(f"{k}: {v:,}" for k, v in run.items.items()))


def make_tokens(directory: Path, year: Year) -> Probe:
    from monitor.access.tokens import create_token

    path = directory / "tokens.json"
    exporter = year.ids[0]
    regulator = create_token(path, "regulator")
    automaker = create_token(path, "automaker", [exporter])
    sees = sorted({exporter} | {r["exporter_id"] for r in registrations(year) if exporter in r["authorised_by"]})
    return Probe(exporter=exporter, regulator=regulator, automaker=automaker, automaker_sees=sees)


async def run_all(options: argparse.Namespace) -> int:
    exporters = options.exporters or (QUICK_EXPORTERS if options.quick else FULL_EXPORTERS)
    year = Year(exporters=exporters, alerts=options.alerts if options.alerts is not None
                else exporters * ALERTS_PER_EXPORTER, seed=options.seed)
    seconds = options.seconds or (3.0 if options.quick else 8.0)
    warm_up = 0.5 if options.quick else 1.0
    clients = sorted({int(c) for c in options.clients.split(",") if c.strip()})
    backends = [b.strip() for b in options.backends.split(",") if b.strip()]
    load_before = os.getloadavg()[0]
    run_started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="api-bench-"))
    runs: list[BackendRun] = []
    try:
        probe = make_tokens(workdir, year)
        progress("checking the bulk rows against the store's own record_batch on a sample")
        rate = await sample_check(year, workdir)
        for backend in backends:
            run = await run_backend(backend, year, probe, workdir / "tokens.json", workdir, clients, seconds, warm_up)
            if run.fill is not None:
                run.fill.record_batch_per_second = rate
            runs.append(run)
    finally:
        if options.keep:
            progress(f"kept {workdir} (server logs, tokens)")
        else:
            for path in sorted(workdir.rglob("*"), reverse=True):
                with contextlib.suppress(OSError):
                    path.rmdir() if path.is_dir() else path.unlink()
            with contextlib.suppress(OSError):
                workdir.rmdir()

    snapshots = year.exporters * len(MARKETS) * year.days * 2
    print(f"\nmachine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; load average {load_before:.2f} "
          f"before the run, {os.getloadavg()[0]:.2f} after (other work on the machine skews the figures); "
          f"the run took {(time.perf_counter() - run_started) / 60:.1f} minutes")
    print(f"each measurement: {warm_up:g} s warm-up, then {seconds:g} s; clients send back to back over keep-alive "
          "connections; latency from sending to the body's last byte; CPU columns: share of one core used by "
          "the server process and by this load generator")
    print(f"the bulk rows equal what HistoryStore.record_batch stores (checked on a sample); record_batch itself "
          f"took {rate:,.0f} snapshots/s there, so this year's {snapshots:,} snapshots would take it about "
          f"{snapshots / rate / 60:,.0f} minutes or more")
    slow: list[str] = []
    for run in runs:
        print_backend(run, year, probe, slow)
    print("\n~: p99 of fewer than 100 requests (close to the max)")
    if slow:
        print(f"p50 above {SLOW_P50_MS:.0f} ms at 16 clients:")
        for line in slow:
            print(f"  {line}")
    if options.json:
        document = {"year": asdict(year), "seconds": seconds, "warm_up": warm_up, "clients": clients,
                    "record_batch_snapshots_per_second": rate,
                    "runs": [{**asdict(r), "cells": [asdict(c) for c in r.cells]} for r in runs]}
        options.json.write_text(json.dumps(document, indent=2, default=str))
        print(f"\nwrote {options.json}")
    failed = any(r.problem or any(c.errors for c in r.cells) for r in runs)
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help=f"a smoke run: 3 s windows and {QUICK_EXPORTERS} exporters (unless --exporters)")
    parser.add_argument("--exporters", type=int,
                        help=f"exporters in the store, each in {len(MARKETS)} markets (default {FULL_EXPORTERS}; "
                             f"{QUICK_EXPORTERS} with --quick)")
    parser.add_argument("--alerts", type=int,
                        help=f"alerts in the store (default {ALERTS_PER_EXPORTER} per exporter: 20,000 for 100)")
    parser.add_argument("--seconds", type=float, help="length of each measurement window (default 8; 3 with --quick)")
    parser.add_argument("--clients", default="16,64", help="numbers of concurrent clients, comma-separated "
                                                            "(default 16,64)")
    parser.add_argument("--backends", default="sqlite,postgresql",
                        help="comma-separated: sqlite, postgresql (default both). PostgreSQL: the server at "
                             "$MONITOR_BENCH_POSTGRES, an asyncpg DSN (default postgresql://postgres@127.0.0.1:5432/"
                             "postgres); a database is made for the run and dropped at its end")
    parser.add_argument("--seed", type=int, default=2026, help="seed of the synthetic year (default 2026)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write every figure to FILE as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (server logs) afterwards")
    options = parser.parse_args()
    if options.exporters is not None and options.exporters < 1:
        parser.error("--exporters must be at least 1")
    unknown = {b.strip() for b in options.backends.split(",")} - {"sqlite", "postgresql", ""}
    if unknown:
        parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}")

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    return asyncio.run(run_all(options))


if __name__ == "__main__":
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))  # run from anywhere without installing the package
    sys.exit(main())
