"""Deadlines fall due on the wall clock: a live worker (no MONITOR_AS_OF) raises the at-risk warning
at warn_at and the breach at the deadline with no further event, retracts a provisional breach when
an answer that occurred in time arrives late, resolves it when the answer occurred after the deadline
(OBLIGATIONS.md, Time and response_48h), and turns a duplicated event into one alert, not two.

The exporter is live in these tests: an outlet heartbeat of the present comes with its old ticket,
so its clock runs on the wall clock ("current"). They share one worker (each its own tickets). An
exporter that sent only the old ticket runs on its own event time until it has been quiet for
MONITOR_CLOCK_IDLE_AFTER_SECONDS; then its deadlines fire on the wall clock too (the last test,
with a worker of its own).

Latency is printed, never asserted: only "it never arrived" fails, after a generous timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest

from monitor.stream.topics import TopicNames
from tests.streaming import WorkerProcess, final_alerts, metric, produce, read_topic, unique_names

EXPORTER = "EXP-001"  # bundled registry: brands with WMIs LRN and LB7, licence for 2026, major markets EG, KE
VIN = "LRNCE4CB5N0012345"  # WMI LRN: one of EXP-001's own brands, so no authorisation alert
NAIROBI = timezone(timedelta(hours=3))  # events carry the market's offset; the rules work in UTC
NEVER = 60.0  # seconds after which a message that should have come is taken as never coming


@pytest.fixture(scope="module")
def live(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TopicNames, WorkerProcess]]:
    """A live worker (no MONITOR_AS_OF) on its own topics, for the tests of EXP-001 whose clock runs
    on the wall clock; each test checks that it still runs."""
    names = unique_names()
    with WorkerProcess(kafka_bootstrap, names, tmp_path_factory.mktemp("deadlines")) as worker:
        print(f"worker ready in {worker.wait_ready():.1f} s")
        yield names, worker


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def wall_now() -> datetime:
    """Whole seconds, so the instants the test writes are exact."""
    return datetime.now(UTC).replace(microsecond=0)


def ticket(names: TopicNames, event_id: str, kind: str, ticket_id: str, at: datetime) -> tuple[str, bytes, bytes]:
    value = {"event_id": event_id, "type": kind, "ticket_id": ticket_id, "exporter_id": EXPORTER, "market": "KE",
             "vin": VIN, "occurred_at": at.astimezone(NAIROBI).isoformat()}
    return names.tickets, ticket_id.encode(), orjson.dumps(value)


def heartbeat(names: TopicNames, event_id: str) -> tuple[str, bytes, bytes]:
    """An outlet status of EXP-001 occurring now: the exporter's data is current."""
    value = {"event_id": event_id, "exporter_id": EXPORTER, "outlet_id": "O-LIVE", "market": "KE",
             "status": "operational", "capabilities": ["maintenance"], "occurred_at": wall_now().isoformat()}
    return names.outlets, b"O-LIVE", orjson.dumps(value)


def response_alerts(messages: list[dict[str, Any]], ticket_id: str,
                    severity: str | None = None) -> list[dict[str, Any]]:
    """The response_48h messages of a ticket's first cycle, in publication order."""
    return [m for m in messages if m["obligation"] == "response_48h" and m["subject"] == f"{ticket_id}#1"
            and (severity is None or m["severity"] == severity)]


def wait_for(bootstrap: str, names: TopicNames, ticket_id: str, severity: str, status: str, *, count: int = 1,
             worker: WorkerProcess) -> list[dict[str, Any]]:
    """Every alert message so far, once `count` messages of (ticket, severity, status) have arrived."""

    def arrived(messages: list[dict[str, Any]]) -> bool:
        matching = [m for m in response_alerts(messages, ticket_id, severity) if m["status"] == status]
        return len(matching) >= count

    messages = asyncio.run(read_topic(bootstrap, names.alerts, until=arrived, idle=0.5, timeout=NEVER))
    assert arrived(messages), (f"no {severity} {status} for {ticket_id} within {NEVER} s; alerts: {messages}\n"
                               f"worker log:\n{worker.tail()}")
    return messages


def open_and_wait(bootstrap: str, live: tuple[TopicNames, WorkerProcess], tag: str, ticket_id: str,
                  opened: datetime, severity: str) -> list[dict[str, Any]]:
    """Produce a heartbeat of the present and `ticket_id` opened at `opened`; every alert message
    once its first `severity` has opened, with no further event (the worker still running)."""
    names, worker = live
    asyncio.run(produce(bootstrap, [heartbeat(names, f"hb-{tag}"), ticket(names, f"{tag}-1", "opened", ticket_id,
                                                                          opened)]))
    messages = wait_for(bootstrap, names, ticket_id, severity, "open", worker=worker)
    assert worker.process is not None and worker.process.poll() is None, worker.tail()
    return messages


def test_breach_is_raised_at_the_deadline_with_no_further_event(
        kafka_bootstrap: str, live: tuple[TopicNames, WorkerProcess]) -> None:
    opened = wall_now() - timedelta(hours=48) + timedelta(seconds=4)
    deadline = opened + timedelta(hours=48)
    messages = open_and_wait(kafka_bootstrap, live, "d", "T-DUE", opened, "breach")

    [breach] = response_alerts(messages, "T-DUE", "breach")
    assert breach["exporter_id"] == EXPORTER and breach["market"] == "KE"
    assert moment(breach["opened_at"]) == deadline, "a breach opens at the deadline, not when it is noticed"
    assert moment(breach["evidence"]["deadline"]) == deadline
    assert breach["resolved_at"] is None and breach["renewal_relevant"] is True
    raised = moment(breach["raised_at"])
    print(f"breach raised {(raised - deadline).total_seconds():+.3f} s after the deadline")

    # warn_at (36 h) was already past when the ticket arrived: the warning opened on arrival and the
    # deadline closed it (on a machine so slow that the ticket is judged only after its deadline, the
    # warning is published resolved at once); when it opened before the deadline, the breach was
    # surely the clock's doing
    warnings = response_alerts(messages, "T-DUE", "warning")
    assert [m["status"] for m in warnings] in (["open", "resolved"], ["resolved"]), warnings
    assert len({m["alert_id"] for m in warnings}) == 1
    assert moment(warnings[-1]["opened_at"]) == opened + timedelta(hours=36)
    assert moment(warnings[-1]["resolved_at"]) == deadline
    arrival = moment(warnings[0]["raised_at"])
    print(f"ticket first judged {(deadline - arrival).total_seconds():+.3f} s before its deadline")


def test_warning_is_raised_at_warn_at_with_no_further_event(
        kafka_bootstrap: str, live: tuple[TopicNames, WorkerProcess]) -> None:
    opened = wall_now() - timedelta(hours=36) + timedelta(seconds=4)
    warn_at = opened + timedelta(hours=36)
    messages = open_and_wait(kafka_bootstrap, live, "w", "T-RISK", opened, "warning")

    [warning] = response_alerts(messages, "T-RISK")
    assert warning["severity"] == "warning" and warning["status"] == "open"
    assert moment(warning["opened_at"]) == warn_at
    assert moment(warning["evidence"]["deadline"]) == opened + timedelta(hours=48)
    assert warning["renewal_relevant"] is False
    print(f"warning raised {(moment(warning['raised_at']) - warn_at).total_seconds():+.3f} s after warn_at")


def test_late_answer_in_time_retracts_the_breach_and_one_after_the_deadline_resolves_it(
        kafka_bootstrap: str, live: tuple[TopicNames, WorkerProcess]) -> None:
    names, worker = live
    opened = wall_now() - timedelta(hours=48, seconds=30)
    deadline = opened + timedelta(hours=48)
    events = [heartbeat(names, "hb-r"), ticket(names, "r-1", "opened", "T-INTIME", opened),
              ticket(names, "l-1", "opened", "T-LATE", opened)]
    asyncio.run(produce(kafka_bootstrap, events))
    wait_for(kafka_bootstrap, names, "T-INTIME", "breach", "open", worker=worker)
    wait_for(kafka_bootstrap, names, "T-LATE", "breach", "open", worker=worker)

    # the answers arrive now; one occurred an hour before the deadline, the other 10 s after it
    in_time = deadline - timedelta(hours=1)
    too_late = deadline + timedelta(seconds=10)
    asyncio.run(produce(kafka_bootstrap, [ticket(names, "r-2", "responded", "T-INTIME", in_time),
                                          ticket(names, "l-2", "responded", "T-LATE", too_late)]))
    wait_for(kafka_bootstrap, names, "T-INTIME", "breach", "retracted", worker=worker)
    messages = wait_for(kafka_bootstrap, names, "T-LATE", "breach", "resolved", worker=worker)
    # and nothing more follows for either breach
    messages = asyncio.run(read_topic(kafka_bootstrap, names.alerts, idle=3.0, timeout=NEVER))
    assert worker.process is not None and worker.process.poll() is None, worker.tail()

    retracted = response_alerts(messages, "T-INTIME", "breach")
    assert [m["status"] for m in retracted] == ["open", "retracted"], retracted
    assert len({m["alert_id"] for m in retracted}) == 1, "the retraction names the breach it retracts"
    assert moment(retracted[1]["opened_at"]) == deadline

    resolved = response_alerts(messages, "T-LATE", "breach")
    assert [m["status"] for m in resolved] == ["open", "resolved"], resolved
    assert len({m["alert_id"] for m in resolved}) == 1
    assert moment(resolved[1]["opened_at"]) == deadline
    assert moment(resolved[1]["resolved_at"]) == too_late
    assert resolved[1]["evidence"]["answer"]["event_id"] == "l-2", "the late answer is kept as evidence"
    assert resolved[1]["evidence"]["response_hours"] > 48

    standing = {k: m for k, m in final_alerts(messages).items()
                if m["obligation"] == "response_48h" and m["status"] != "retracted"
                and m["subject"] in ("T-INTIME#1", "T-LATE#1")}
    assert {(m["subject"], m["severity"], m["status"]) for m in standing.values()} == {
        ("T-INTIME#1", "warning", "resolved"), ("T-LATE#1", "warning", "resolved"),
        ("T-LATE#1", "breach", "resolved")}


def test_a_duplicated_event_raises_one_alert(kafka_bootstrap: str, live: tuple[TopicNames, WorkerProcess]) -> None:
    names, worker = live
    duplicates_before = metric(worker, "monitor_events_duplicate_total")
    consumed_before = metric(worker, "monitor_events_consumed_total")
    opened = wall_now() - timedelta(hours=48, seconds=30)
    record = ticket(names, "dup-1", "opened", "T-TWICE", opened)
    asyncio.run(produce(kafka_bootstrap, [heartbeat(names, "hb-t"), record, record]))
    wait_for(kafka_bootstrap, names, "T-TWICE", "breach", "open", worker=worker)
    # once more, after the breach was raised: a redelivery long after the first copy
    asyncio.run(produce(kafka_bootstrap, [record]))
    messages = asyncio.run(read_topic(kafka_bootstrap, names.alerts, idle=3.0, timeout=NEVER))
    duplicates = metric(worker, "monitor_events_duplicate_total") - duplicates_before
    consumed = metric(worker, "monitor_events_consumed_total") - consumed_before
    assert worker.process is not None and worker.process.poll() is None, worker.tail()

    alerts = response_alerts(messages, "T-TWICE")
    ids = {(m["severity"], m["alert_id"]) for m in alerts}
    assert sorted(severity for severity, _ in ids) == ["breach", "warning"], alerts
    print(f"{len(alerts)} alert messages for 2 alerts: {[(m['severity'], m['status']) for m in alerts]}")
    # at least once: a rebalance may deliver a copy more, never fewer
    assert consumed >= 3
    assert duplicates >= 2, "both later copies are recognised as duplicates by event_id"


def test_a_quiet_exporters_deadline_fires_on_the_wall_clock(kafka_bootstrap: str, tmp_path: Path) -> None:
    names = unique_names()
    quiet_after = 3.0
    with WorkerProcess(kafka_bootstrap, names, tmp_path,
                       env={"MONITOR_CLOCK_IDLE_AFTER_SECONDS": str(quiet_after)}) as worker:
        worker.wait_ready()
        # its only event is two days old: its data is behind, so the clock waits for more of it ...
        opened = wall_now() - timedelta(hours=48) - timedelta(seconds=30)
        deadline = opened + timedelta(hours=48)
        asyncio.run(produce(kafka_bootstrap, [ticket(names, "q-1", "opened", "T-QUIET", opened)]))
        # ... until nothing more has come for MONITOR_CLOCK_IDLE_AFTER_SECONDS: then the wall clock runs
        messages = wait_for(kafka_bootstrap, names, "T-QUIET", "breach", "open", worker=worker)
        assert worker.process is not None and worker.process.poll() is None, worker.tail()

    [breach] = response_alerts(messages, "T-QUIET", "breach")
    assert moment(breach["opened_at"]) == deadline
    assert breach["clock"] == "wall_clock", "raised on silence, not shown by the exporter's data"
    print(f"breach raised {(moment(breach['raised_at']) - deadline).total_seconds():+.3f} s after the deadline, "
          f"quiet after {quiet_after} s")
