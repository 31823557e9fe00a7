"""What operators watch, on a real worker and a real API: each figure on /metrics is right (the counts of
messages read and refused by topic and reason, the live compliance gauges equal to the figures published,
the age of events judged, how late a deadline's alert came, the dead letters held, the consumer lag),
`promtool check metrics` accepts both expositions, Debian's Prometheus server scrapes both and answers a
query with a figure it scraped, and the worker's JSON log lines follow one ticket from its events to its
alert.

One scenario serves every test: a worker (JSON logs, debug) judging a ticket whose deadline passes while
it runs, an outlet heartbeat, a stock report and four bad messages, then `monitor api` on the worker's
history store. Waits have deadlines; durations are never asserted.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.embedded.broker import free_port
from tests.promtool import needs_promtool, promtool_problems
from tests.services.required import needs
from tests.streaming import ROOT, WorkerProcess, final_alerts, produce, read_topic, unique_names

PROMETHEUS = Path("/usr/bin/prometheus")
EXPORTER = "EXP-001"  # bundled registry: major markets EG and KE, category I (more than 50 outlets required)
VIN = "LRNCE4CB5N0012345"  # one of EXP-001's own brands
TICKET = "T-1001"
NEVER = 60.0

Sample = tuple[str, dict[str, str], float]


@dataclass
class Running:
    worker: WorkerProcess
    api_url: str
    api_log: Path  # its output (JSON lines)
    api_calls: int  # GET /api/v1/compliance answered 200 by the API, for Prometheus to count
    produced: dict[str, int]  # input topic (short name) -> messages produced
    valid: dict[str, int]  # input topic -> valid events among them
    refused: dict[tuple[str, str], int]  # (input topic, reason) -> bad messages produced
    alerts: list[dict[str, Any]]  # every alert message published, in order
    snapshot: dict[str, Any]  # the latest published figures of EXP-001 in KE
    dead_letters: int  # records on the dead-letter topic
    deadline: datetime  # of the ticket's first cycle


def at(moment: datetime) -> str:
    return moment.isoformat()


def scenario_records(prefix: str, now: datetime) -> tuple[list[tuple[str, bytes, bytes]], datetime]:
    """A ticket whose deadline comes a few seconds after it is produced, an outlet heartbeat and a stock
    report (two minutes old: the exporter's data is current), and four bad messages of distinct kinds."""
    opened = now - timedelta(hours=48) + timedelta(seconds=6)
    ticket = {"event_id": "e-1001-open", "type": "opened", "ticket_id": TICKET, "exporter_id": EXPORTER,
              "market": "KE", "vin": VIN, "occurred_at": at(opened)}
    outlet = {"event_id": "o-ke-01", "exporter_id": EXPORTER, "outlet_id": "OUT-KE-01", "market": "KE",
              "status": "operational", "capabilities": ["maintenance", "emergency_rescue_24h"],
              "occurred_at": at(now - timedelta(minutes=2))}
    stock = {"event_id": "s-ke-1", "exporter_id": EXPORTER, "market": "KE", "depot_id": "DEP-KE-1",
             "lines": [{"part_number": "LRN-INV-100", "quantity_on_hand": 2},
                       {"part_number": "LRN-IBS-101", "quantity_on_hand": 0}],
             "occurred_at": at(now - timedelta(minutes=2))}
    naive = ticket | {"event_id": "e-2002-open", "ticket_id": "T-2002", "occurred_at": "2026-03-01T10:00:00"}
    no_vin = {k: v for k, v in ticket.items() if k != "vin"} | {"event_id": "e-2003-open", "ticket_id": "T-2003"}
    records = [
        (prefix + "service-tickets", TICKET.encode(), orjson.dumps(ticket)),
        (prefix + "outlet-status", b"OUT-KE-01", orjson.dumps(outlet)),
        (prefix + "parts-stock", b"DEP-KE-1", orjson.dumps(stock)),
        (prefix + "service-tickets", b"T-junk", b'{"event_id": "x", "type": opened'),
        (prefix + "service-tickets", b"T-2002", orjson.dumps(naive)),
        (prefix + "service-tickets", b"T-2003", orjson.dumps(no_vin)),
        (prefix + "outlet-status", b"OUT-list", orjson.dumps([outlet])),
    ]
    return records, opened + timedelta(hours=48)


REFUSED = {("service-tickets", "not_json"): 1, ("service-tickets", "naive_timestamp"): 1,
           ("service-tickets", "missing_field"): 1, ("outlet-status", "not_an_object"): 1}


def breach_of(messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((m for m in messages if m["subject"] == f"{TICKET}#1" and m["severity"] == "breach"
                 and m["status"] == "open"), None)


def snapshot_ready(records: list[Any]) -> bool:
    latest = {r.key: orjson.loads(r.value) for r in records}
    figures = latest.get(f"{EXPORTER}:KE".encode())
    return figures is not None and figures["response_48h"]["breached"] == 1 and \
        figures["parts_inventory"]["stocked"] == 1 and figures["emergency_coverage"]["rescue_outlets"] == 1


def scrape(url: str) -> str:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as answer:
        return answer.read().decode()


def samples(text: str) -> list[Sample]:
    return [(s.name, dict(s.labels), s.value) for family in text_string_to_metric_families(text)
            for s in family.samples]


def value(found: list[Sample], name: str, **labels: str) -> float | None:
    matching = [v for n, lab, v in found if n == name and all(lab.get(k) == w for k, w in labels.items())]
    assert len(matching) <= 1, f"{name}{labels}: {len(matching)} series"
    return matching[0] if matching else None


def worker_url(running: Running) -> str:
    return f"http://127.0.0.1:{running.worker.web_port}"


def start_api(data_dir: Path, bootstrap: str, log_path: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    """`monitor api` on a free port over the worker's history store, with a regulator token made for it."""
    tokens = data_dir / "api-tokens.json"
    env = {**os.environ, "MONITOR_DATA_DIR": str(data_dir), "MONITOR_API_TOKENS": str(tokens),
           "MONITOR_KAFKA_BOOTSTRAP": bootstrap, "MONITOR_LOG_FORMAT": "json"}
    token = subprocess.run([sys.executable, "-m", "monitor", "token", "create", "--role", "regulator"], env=env,
                           check=True, capture_output=True, text=True, cwd=ROOT).stdout.strip()
    port = free_port()
    with log_path.open("ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "monitor", "api", "--port", str(port)], env=env,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + NEVER
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"monitor api exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                return process, url, token
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError(f"monitor api did not answer within {NEVER} s:\n{log_path.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    return process.returncode


@pytest.fixture(scope="module")
def running(embedded_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("observability")
    names = unique_names()
    worker = WorkerProcess(embedded_bootstrap, names, tmp, options=["-v", "-v"],
                           env={"MONITOR_LOG_FORMAT": "json", "MONITOR_DEADLETTER_CHECK_SECONDS": "1"})
    api: subprocess.Popen[bytes] | None = None
    with worker:
        worker.wait_ready()
        records, deadline = scenario_records(names.prefix, datetime.now(UTC).replace(microsecond=0))
        asyncio.run(produce(embedded_bootstrap, records))

        alerts = asyncio.run(read_topic(embedded_bootstrap, names.alerts, until=lambda m: breach_of(m) is not None,
                                        idle=1.0, timeout=NEVER))
        assert breach_of(alerts) is not None, f"no breach of {TICKET} within {NEVER} s:\n{worker.tail()}"
        dead = asyncio.run(read_topic(embedded_bootstrap, names.deadletter, until=lambda m: len(m) >= 4, idle=0.5,
                                      timeout=NEVER, raw=True))
        figures = asyncio.run(read_topic(embedded_bootstrap, names.compliance, until=snapshot_ready, idle=1.5,
                                         timeout=NEVER, raw=True))
        assert snapshot_ready(figures), f"figures of {EXPORTER} in KE not published:\n{worker.tail()}"
        snapshot = {r.key: orjson.loads(r.value) for r in figures}[f"{EXPORTER}:KE".encode()]

        api, api_url, token = start_api(tmp / "worker", embedded_bootstrap, tmp / "api.log")
        try:
            calls = 0
            for _ in range(2):
                request = urllib.request.Request(f"{api_url}/api/v1/compliance?exporter={EXPORTER}",
                                                 headers={"Authorization": f"Bearer {token}"})
                with urllib.request.urlopen(request, timeout=10) as answer:
                    assert answer.status == 200
                    calls += 1
            produced: dict[str, int] = {}
            for topic, _, _ in records:
                short = topic.removeprefix(names.prefix)
                produced[short] = produced.get(short, 0) + 1
            refused_by_topic = {t: sum(n for (tt, _), n in REFUSED.items() if tt == t) for t in produced}
            yield Running(worker=worker, api_url=api_url, api_log=tmp / "api.log", api_calls=calls, produced=produced,
                          valid={t: produced[t] - refused_by_topic[t] for t in produced}, refused=REFUSED,
                          alerts=alerts, snapshot=snapshot, dead_letters=len(dead), deadline=deadline)
        finally:
            stop(api)


def test_messages_read_and_refused_are_counted_by_topic_and_reason(running: Running) -> None:
    found = samples(scrape(worker_url(running)))

    for topic, count in running.produced.items():
        assert value(found, "monitor_events_consumed_total", topic=topic) == count, topic
    refused = {(labels["topic"], labels["reason"]): v for name, labels, v in found
               if name == "monitor_events_rejected_total"}
    assert refused == running.refused


def test_live_compliance_gauges_equal_the_figures_published(running: Running) -> None:
    found = samples(scrape(worker_url(running)))
    published = running.snapshot
    pair = {"exporter": EXPORTER, "market": "KE"}

    assert value(found, "monitor_compliance_response_ratio", **pair) == published["response_48h"]["ratio"] == 0.0
    assert value(found, "monitor_compliance_parts_inventory_rate", **pair) == published["parts_inventory"]["rate"]
    assert published["parts_inventory"]["rate"] > 0
    assert value(found, "monitor_compliance_rescue_outlets", **pair) == \
        published["emergency_coverage"]["rescue_outlets"] == 1
    met = {(labels["market"], labels["obligation"]): v for name, labels, v in found
           if name == "monitor_compliance_met" and labels["exporter"] == EXPORTER}
    assert met[("KE", "parts_inventory")] == float(published["parts_inventory"]["compliant"])
    assert met[("KE", "emergency_coverage")] == float(published["emergency_coverage"]["covered"]) == 1.0
    assert met[("all", "network_size")] == float(published["network_size"]["compliant"]) == 0.0, \
        "one outlet is short of the more than 50 a category I exporter needs"
    assert ("KE", "response_48h") not in met, "response is judged over a period, never met at an instant"
    assert value(found, "monitor_compliance_series_dropped_total") == 0


def test_the_age_of_each_judged_event_is_measured_by_topic(running: Running) -> None:
    found = samples(scrape(worker_url(running)))

    for topic, count in running.valid.items():
        assert value(found, "monitor_event_processing_lag_seconds_count", topic=topic) == count, topic
    tickets = {"topic": "service-tickets"}
    # the ticket was opened two days less a few seconds before it was judged
    assert value(found, "monitor_event_processing_lag_seconds_bucket", le="86400.0", **tickets) == 0
    assert value(found, "monitor_event_processing_lag_seconds_bucket", le="172800.0", **tickets) == 1
    # the outlet heartbeat and the stock report were two minutes old
    for topic in ("outlet-status", "parts-stock"):
        assert value(found, "monitor_event_processing_lag_seconds_bucket", le="60.0", topic=topic) == 0, topic
        assert value(found, "monitor_event_processing_lag_seconds_bucket", le="300.0", topic=topic) == 1, topic


def test_a_breach_raised_by_the_clock_is_measured_against_its_deadline(running: Running) -> None:
    found = samples(scrape(worker_url(running)))
    alerts = [m for m in running.alerts if m["subject"] == f"{TICKET}#1"]
    breach = breach_of(alerts)
    assert breach is not None
    first_judged = datetime.fromisoformat(alerts[0]["raised_at"])
    raised = datetime.fromisoformat(breach["raised_at"])
    print(f"{TICKET} first judged {(running.deadline - first_judged).total_seconds():.3f} s before its deadline; "
          f"breach raised {(raised - running.deadline).total_seconds():.3f} s after it")

    count = value(found, "monitor_deadline_lag_seconds_count")
    if first_judged < running.deadline:  # the clock raised the breach: one observation, raised_at - deadline
        assert count == 1
        lag = value(found, "monitor_deadline_lag_seconds_sum")
        assert lag is not None and abs(lag - (raised - running.deadline).total_seconds()) < 1e-3
    else:  # a machine so slow that the ticket was first judged past its deadline: no timer was involved
        assert count == 0


def test_each_exporters_data_freshness_and_the_event_loops_lag_are_shown(running: Running) -> None:
    found = samples(scrape(worker_url(running)))
    states = {lab["state"]: v for n, lab, v in found
              if n == "monitor_exporter_clock_state" and lab["exporter"] == EXPORTER}
    assert states == {"current": 1.0, "backlog": 0.0, "quiet": 0.0}, "its latest events are two minutes old"
    lag = value(found, "monitor_exporter_data_lag_seconds", exporter=EXPORTER)
    assert lag is not None and 120 <= lag < 120 + 600, lag
    assert (value(found, "monitor_event_loop_lag_seconds_count") or 0) > 0
    freshness = running.snapshot["freshness"]
    assert (freshness["state"], freshness["clock"]) == ("current", "wall_clock")
    assert freshness["latest_event_at"] is not None and freshness["lag_seconds"] >= 120


def test_the_dead_letters_held_are_counted_from_the_topic(running: Running) -> None:
    assert running.dead_letters == sum(running.refused.values())
    deadline = time.monotonic() + NEVER
    held = None
    while time.monotonic() < deadline:  # read from the broker every second in this scenario
        held = value(samples(scrape(worker_url(running))), "monitor_deadletter_messages")
        if held == running.dead_letters:
            break
        time.sleep(0.3)
    assert held == running.dead_letters


def test_the_consumer_lag_of_each_input_partition_read_is_shown(running: Running) -> None:
    found = samples(scrape(worker_url(running)))

    lags = {(labels["topic"], labels["partition"]): v for name, labels, v in found
            if name == "monitor_consumer_lag_messages"}
    assert {topic for topic, _ in lags} == set(running.produced), lags
    assert all(lag == 0 for lag in lags.values()), f"every message was read: {lags}"


@needs_promtool
def test_promtool_accepts_the_expositions_of_the_worker_and_the_api(running: Running) -> None:
    assert "lint" not in promtool_problems("# HELP x_total a count\n# TYPE x_total counter\nx_total 1\n")
    assert 'should have "_total" suffix' in promtool_problems("# HELP x a count\n# TYPE x counter\nx 1\n"), \
        "promtool reports a lint problem as expected"

    for url in (worker_url(running), running.api_url):
        exposition = scrape(url)
        assert "monitor_" in exposition
        assert promtool_problems(exposition) == "", url


def prometheus_api(base: str, path: str, **query: str) -> Any:
    address = f"{base}/api/v1/{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    with urllib.request.urlopen(address, timeout=5) as answer:
        document = json.loads(answer.read())
    assert document["status"] == "success", document
    return document["data"]


@needs(PROMETHEUS.exists(), "Debian's prometheus is not installed (apt-get install prometheus)")
def test_prometheus_scrapes_the_worker_and_the_api_and_answers_with_their_figures(
        running: Running, tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        f"  - job_name: monitor-worker\n    static_configs:\n      - targets: ['127.0.0.1:{running.worker.web_port}']\n"
        f"  - job_name: monitor-api\n    static_configs:\n"
        f"      - targets: ['{running.api_url.removeprefix('http://')}']\n")
    log_path = tmp_path / "prometheus.log"
    with log_path.open("ab") as log:
        server = subprocess.Popen([str(PROMETHEUS), f"--config.file={config}",
                                   f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                   f"--web.listen-address=127.0.0.1:{port}"],
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    rate_query = f'monitor_compliance_parts_inventory_rate{{job="monitor-worker",exporter="{EXPORTER}",market="KE"}}'
    calls_query = 'monitor_api_requests_total{job="monitor-api",route="/api/v1/compliance",status="200"}'
    try:
        health: dict[str, str] = {}
        answers: dict[str, list[Any]] = {}
        started = time.monotonic()
        deadline = started + NEVER
        while time.monotonic() < deadline:
            assert server.poll() is None, f"prometheus exited with {server.returncode}:\n{log_path.read_text()}"
            try:
                targets = prometheus_api(base, "targets")["activeTargets"]
                health = {t["labels"]["job"]: t["health"] for t in targets}
                if health == {"monitor-worker": "up", "monitor-api": "up"}:
                    answers = {q: prometheus_api(base, "query", query=q)["result"] for q in (rate_query, calls_query)}
                    if all(answers.values()):
                        break
            except OSError:
                pass  # not listening yet
            time.sleep(0.3)
        assert health == {"monitor-worker": "up", "monitor-api": "up"}, f"{health}\n{log_path.read_text()[-3000:]}"
        print(f"prometheus: both targets up and both figures answered {time.monotonic() - started:.1f} s after start")
        [rate] = answers[rate_query]
        [calls] = answers[calls_query]
    finally:
        returncode = stop(server)

    assert float(rate["value"][1]) == running.snapshot["parts_inventory"]["rate"]
    assert rate["metric"]["instance"] == f"127.0.0.1:{running.worker.web_port}"
    assert float(calls["value"][1]) == running.api_calls
    assert returncode == 0, log_path.read_text()[-3000:]


def test_json_log_lines_follow_one_ticket_from_its_events_to_its_alert(running: Running) -> None:
    # last in this file: it stops the worker, so its shutdown lines are read too
    assert running.worker.stop() == 0, running.worker.tail()
    lines = running.worker.log_path.read_text().splitlines()

    records = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except ValueError:
            raise AssertionError(f"line {number} of the worker's output is not JSON: {line[:300]!r}") from None
        assert isinstance(record, dict) and {"time", "level", "logger", "message"} <= record.keys(), line[:300]
        records.append(record)
    loggers = {r["logger"] for r in records}
    assert any(name.startswith("faust") for name in loggers) and any(name.startswith("aiokafka") for name in loggers)

    about = [r for r in records if r.get("ticket_id") == TICKET]
    events = [r for r in about if r["logger"] == "monitor.stream.worker" and r.get("event_id") == "e-1001-open"]
    assert events and events[0]["level"] == "DEBUG", "the ticket's event, when it was taken for judging"
    assert events[0]["exporter_id"] == EXPORTER and events[0]["market"] == "KE" and events[0]["type"] == "opened"

    on_topic = final_alerts(m for m in running.alerts if m["subject"] == f"{TICKET}#1")
    published = [r for r in about if r["logger"] == "monitor.stream.worker" and "alert_id" in r]
    assert {r["alert_id"] for r in published} == set(on_topic), "each of the ticket's alerts, by its id"
    breach = breach_of(running.alerts)
    assert breach is not None
    [breach_line] = [r for r in published if r["alert_id"] == breach["alert_id"] and r["status"] == "open"]
    assert breach_line["level"] == "INFO" and breach_line["severity"] == "breach"
    assert breach_line["obligation"] == "response_48h" and breach_line["subject"] == f"{TICKET}#1"
    assert breach_line["exporter_id"] == EXPORTER and breach_line["market"] == "KE"
    assert records.index(events[0]) < records.index(breach_line), "the event's line comes before the alert's"
    stored = [r for r in records if r["logger"] == "monitor.history.sink" and r.get("alert_id") == breach["alert_id"]]
    assert stored and stored[0]["ticket_id"] == TICKET, "the history sink wrote the breach"

    api_lines = running.api_log.read_text().splitlines(keepends=True)
    api_records = [json.loads(line) for line in api_lines if line.endswith("\n")]  # the API still runs
    assert any("dashboard: http://" in r["message"] for r in api_records), "its status line is JSON too"
    assert any(r["logger"].startswith("uvicorn") for r in api_records), "uvicorn's lines too"

    [refused] = [r for r in records if r.get("ticket_id") == "T-2002"]
    assert refused["level"] == "INFO" and refused["reason"] == "naive_timestamp" and "dead-lettered" in \
        refused["message"]
    assert refused["event_id"] == "e-2002-open" and refused["topic"] == "service-tickets"
    assert isinstance(refused["partition"], int) and isinstance(refused["offset"], int)
