"""Each exporter's live clock (OBLIGATIONS.md, Time), without Kafka: the rules of
`monitor.obligations.clock`, and what they do to the live judgement of a replay, a late batch
and a quiet exporter (`LiveNetwork.tick`)."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any

from monitor.batch.evaluate import evaluate_records
from monitor.contracts.lines import EVENT_LINE
from monitor.contracts.outputs import AlertClock, ClockState
from monitor.contracts.policy import DEFAULT_POLICY
from monitor.contracts.registry import ExporterRegistration
from monitor.obligations.clock import CAUGHT_UP, ExporterClock, InputProgress
from monitor.obligations.policy import PolicyBook
from monitor.obligations.timebase import HOUR, SECOND, stamp, to_datetime, to_micros
from monitor.simulation.network import NetworkSpec, events, registrations
from monitor.stream.intake import input_progress
from monitor.stream.live import LiveNetwork
from tests.builders import EXPORTER, outlet, registration, ticket, utc
from tests.streaming import final_alerts

MINUTE = 60 * SECOND
T0 = to_micros(utc("2026-03-10T12:00:00Z"))


def test_current_data_runs_on_the_wall_clock() -> None:
    clock = ExporterClock(lag_bound=5 * MINUTE, idle_after=5 * MINUTE)
    clock.received(T0 - 4 * MINUTE, wall=T0)
    assert clock.advance(T0, CAUGHT_UP) == T0
    assert clock.state is ClockState.current and clock.kind is AlertClock.wall_clock


def test_a_backlog_runs_on_the_exporters_own_event_time() -> None:
    clock = ExporterClock(lag_bound=5 * MINUTE, idle_after=5 * MINUTE)
    clock.received(T0 - 3 * HOUR, wall=T0)
    assert clock.advance(T0 + SECOND, CAUGHT_UP) == T0 - 3 * HOUR
    assert clock.state is ClockState.backlog and clock.kind is AlertClock.event_time
    clock.received(T0 - 2 * HOUR, wall=T0 + 2 * SECOND)
    assert clock.advance(T0 + 3 * SECOND, CAUGHT_UP) == T0 - 2 * HOUR


def test_event_time_counts_only_as_far_as_the_workers_input_has_reached() -> None:
    clock = ExporterClock(lag_bound=5 * MINUTE, idle_after=5 * MINUTE)
    clock.received(T0 - HOUR, wall=T0)
    behind = InputProgress(caught_up=False, reached=T0 - 2 * HOUR)
    assert clock.advance(T0, behind) == T0 - 2 * HOUR
    # recent data of this exporter is not "current" while other input it may have sent is unread
    clock.received(T0 - SECOND, wall=T0)
    assert clock.advance(T0, behind) == T0 - 2 * HOUR and clock.state is ClockState.backlog


def test_a_quiet_exporter_runs_on_the_wall_clock_once_the_worker_has_read_everything() -> None:
    clock = ExporterClock(lag_bound=5 * MINUTE, idle_after=5 * MINUTE)
    clock.received(T0 - 3 * HOUR, wall=T0)
    assert clock.advance(T0 + 4 * MINUTE, CAUGHT_UP) == T0 - 3 * HOUR  # not quiet yet
    # the worker's own backlog never passes for the exporter's silence
    assert clock.advance(T0 + 10 * MINUTE, InputProgress(caught_up=False)) == T0 - 3 * HOUR
    assert clock.state is ClockState.backlog
    assert clock.advance(T0 + 5 * MINUTE, CAUGHT_UP) == T0 + 5 * MINUTE
    assert clock.state is ClockState.quiet and clock.kind is AlertClock.wall_clock


def test_the_clock_never_moves_back() -> None:
    clock = ExporterClock(lag_bound=5 * MINUTE, idle_after=5 * MINUTE)
    clock.received(T0 - 3 * HOUR, wall=T0)
    assert clock.advance(T0 + 5 * MINUTE, CAUGHT_UP) == T0 + 5 * MINUTE  # quiet: wall clock
    clock.received(T0 - 2 * HOUR, wall=T0 + 6 * MINUTE)  # a late batch starts
    assert clock.advance(T0 + 6 * MINUTE, CAUGHT_UP) == T0 + 5 * MINUTE
    assert clock.state is ClockState.backlog


def test_an_alert_says_whether_the_data_or_silence_raised_it() -> None:
    clock = ExporterClock()
    clock.received(T0, wall=T0)
    assert clock.raised_by(T0) is AlertClock.event_time
    assert clock.raised_by(T0 + 1) is AlertClock.wall_clock


def test_freshness_says_how_far_behind_the_data_is() -> None:
    clock = ExporterClock(lag_bound=5 * MINUTE, idle_after=5 * MINUTE)
    assert clock.freshness(T0)["latest_event_at"] is None
    clock.received(T0 - 3 * HOUR, wall=T0)
    clock.advance(T0, CAUGHT_UP)
    assert clock.freshness(T0) == {"latest_event_at": "2026-03-10T09:00:00Z", "lag_seconds": 10800.0,
                                   "clock": "event_time", "state": "backlog"}


def test_the_watermark_of_state_events_waits_for_a_backlog_still_coming() -> None:
    clock = ExporterClock(lag_bound=5 * MINUTE, idle_after=5 * MINUTE)
    clock.received(T0 - MINUTE, wall=T0)
    clock.advance(T0, CAUGHT_UP)  # current: state events wait the window behind the wall clock
    assert clock.watermark(2 * SECOND, CAUGHT_UP) == T0 - 2 * SECOND
    clock.received(T0 - 3 * HOUR, wall=T0 + SECOND)
    behind = InputProgress(caught_up=False, reached=T0 - 2 * HOUR)
    clock.advance(T0 + SECOND, behind)  # a clock held at T0, the input read up to T0 - 2 h
    assert clock.state is ClockState.backlog
    assert clock.watermark(2 * SECOND, behind) == T0 - 2 * HOUR - 2 * SECOND
    clock.advance(T0 + 10 * MINUTE, CAUGHT_UP)  # quiet: staleness is judged on the wall clock
    assert clock.watermark(2 * SECOND, CAUGHT_UP) == T0 + 10 * MINUTE - 2 * SECOND


def test_the_last_events_of_a_backlog_are_judged_once_nothing_more_is_in_flight() -> None:
    clock = ExporterClock(lag_bound=5 * MINUTE, idle_after=5 * MINUTE)
    clock.received(T0 - 3 * HOUR, wall=T0)  # one old event, and nothing after it
    clock.advance(T0 + SECOND, CAUGHT_UP)
    assert clock.state is ClockState.backlog and clock.now == T0 - 3 * HOUR
    assert clock.watermark(2 * SECOND, CAUGHT_UP) == T0 - 3 * HOUR - 2 * SECOND  # others may be in flight
    behind = InputProgress(caught_up=False, reached=T0 - HOUR)
    clock.advance(T0 + 3 * SECOND, behind)  # the worker still reading its input: they still may
    assert clock.watermark(2 * SECOND, behind) == T0 - 3 * HOUR - 2 * SECOND
    clock.advance(T0 + 3 * SECOND, CAUGHT_UP)  # all read, and the window has passed since it came
    assert clock.watermark(2 * SECOND, CAUGHT_UP) == T0 - 3 * HOUR


# ---- the live judgement on these clocks --------------------------------------------------------

SPEC = NetworkSpec(exporters=3, markets_per_exporter=2, outlets_per_market=3, catalogue_size=8,
                   tickets_per_day_per_market=20.0, start=date(2026, 3, 1), days=12)


def _lines(records: list[dict[str, Any]]) -> list[Any]:
    return [EVENT_LINE.validate_python(record) for record in records]


def _replay(network: LiveNetwork, lines: list[Any], wall: int, *, step: int = 2_000, tick_every: int = 50,
            progress: InputProgress = CAUGHT_UP) -> tuple[list[dict[str, Any]], int]:
    """Deliver `lines` in order, `step` microseconds of wall clock apart, ticking as a worker does."""
    published = []
    for index, line in enumerate(lines, start=1):
        wall += step
        network.add(to_micros(line.occurred_at), line, wall)
        if index % tick_every == 0:
            published.extend(network.tick(wall, 2 * SECOND, lambda _: progress))
    return published, wall


def _retracted(messages: list[dict[str, Any]]) -> Counter[str]:
    return Counter(m["obligation"] for m in messages if m["status"] == "retracted")


def _registry(records: list[dict[str, Any]]) -> dict[str, ExporterRegistration]:
    return {r["exporter_id"]: ExporterRegistration.model_validate(r) for r in records}


# ---- how far an intake's input has got (the `reached` of InputProgress) ---------------------------

TICKETS, OUTLETS = ("service-tickets", 0), ("outlet-status", 0)


def test_the_input_has_reached_the_latest_event_time_of_its_slowest_lagging_partition() -> None:
    lag = {TICKETS: 500, OUTLETS: 40}
    latest = {TICKETS: T0, OUTLETS: T0 - 30 * HOUR}
    assert input_progress(lag, latest, {}, unread=False, catch_up_lag=1000, settle=None, now=0.0) \
        == (T0 - 30 * HOUR, False)
    assert input_progress(lag, latest, {}, unread=False, catch_up_lag=100, settle=None, now=0.0) \
        == (T0 - 30 * HOUR, True)
    # a partition with records and none delivered yet may hold any event time
    assert input_progress(lag, latest, {}, unread=True, catch_up_lag=1000, settle=None, now=0.0) == (0, True)


def test_a_partition_read_to_its_end_no_longer_holds_event_time_back() -> None:
    lag = {TICKETS: 500, OUTLETS: 0}
    latest = {TICKETS: T0, OUTLETS: T0 - 30 * HOUR}
    assert input_progress(lag, latest, {OUTLETS: 99.5}, unread=False, catch_up_lag=1000, settle=None,
                          now=100.0) == (T0, False)
    assert input_progress({TICKETS: 0, OUTLETS: 0}, latest, {}, unread=False, catch_up_lag=1000, settle=None,
                          now=100.0) == (None, False)


def test_on_a_broker_reporting_ends_short_a_partition_at_its_end_holds_until_it_stops_delivering() -> None:
    """The embedded broker reports the start of a partition's last batch as its end: while a
    backlog is read, the batch's other records (here a day of outlet heartbeats) may still be on
    their way."""
    lag = {TICKETS: 5000, OUTLETS: -12}  # delivered past the end reported
    latest = {TICKETS: T0, OUTLETS: T0 - 30 * HOUR}
    delivering = input_progress(lag, latest, {OUTLETS: 99.0}, unread=False, catch_up_lag=1000, settle=2.0,
                                now=100.0)
    assert delivering == (T0 - 30 * HOUR, True)
    stopped = input_progress(lag, latest, {OUTLETS: 97.0}, unread=False, catch_up_lag=1000, settle=2.0, now=100.0)
    assert stopped == (T0, True)
    on_kafka = input_progress(lag, latest, {OUTLETS: 99.0}, unread=False, catch_up_lag=1000, settle=None, now=100.0)
    assert on_kafka == (T0, True)


def test_on_a_broker_reporting_ends_short_a_partition_short_of_its_true_end_holds_however_long_it_pauses() -> None:
    """Its last batch read directly shows records not routed yet: a pause in its delivery (a
    worker starved of CPU for seconds) does not let the clock pass them; once its routing reaches
    the true end it holds no more, however recently it delivered."""
    lag = {TICKETS: 5000, OUTLETS: -12}
    latest = {TICKETS: T0, OUTLETS: T0 - 30 * HOUR}
    paused = input_progress(lag, latest, {OUTLETS: 90.0}, unread=False, catch_up_lag=1000, settle=2.0, now=100.0,
                            true_end={OUTLETS: False})
    assert paused == (T0 - 30 * HOUR, True)
    at_end = input_progress(lag, latest, {OUTLETS: 99.9}, unread=False, catch_up_lag=1000, settle=2.0, now=100.0,
                            true_end={OUTLETS: True})
    assert at_end == (T0, True)


def test_live_a_late_message_at_a_partitions_end_holds_nobodys_clock() -> None:
    lag = {TICKETS: 0, OUTLETS: 0}
    latest = {TICKETS: T0, OUTLETS: T0 - 30 * HOUR}  # an outlet's heartbeat a day late, just delivered
    live = input_progress(lag, latest, {OUTLETS: 99.0}, unread=False, catch_up_lag=1000, settle=2.0, now=100.0,
                          caught_up_at=50.0)
    assert live == (None, False)
    just_caught_up = input_progress(lag, latest, {OUTLETS: 99.0}, unread=False, catch_up_lag=1000, settle=2.0,
                                    now=100.0, caught_up_at=99.5)
    assert just_caught_up == (T0 - 30 * HOUR, False)


def test_a_replay_faster_than_real_time_raises_no_alert_it_later_retracts() -> None:
    registry = _registry(registrations(SPEC))
    records = list(events(SPEC))
    lines = _lines(records)
    end = max(to_micros(line.occurred_at) for line in lines)
    wall = end + 30 * 24 * HOUR  # the history is a month old: every deadline in it has passed
    network = LiveNetwork(registry, PolicyBook(DEFAULT_POLICY))
    published, wall = _replay(network, lines, wall)
    # then live: the exporters fall quiet, the worker has read everything, the wall clock takes over
    for _ in range(12):
        wall += MINUTE
        published.extend(network.tick(wall, 2 * SECOND, lambda _: CAUGHT_UP))

    # the same replay judged on the wall clock alone: what the clocks spare their users
    baseline = LiveNetwork(registry, PolicyBook(DEFAULT_POLICY))
    on_wall = []
    for index, line in enumerate(lines, start=1):
        baseline.add(to_micros(line.occurred_at), line)
        if index % 50 == 0:
            on_wall.extend(baseline.flush(wall, wall - 2 * SECOND))
    retracted, retracted_on_wall = sum(_retracted(published).values()), sum(_retracted(on_wall).values())
    print(f"replay of {len(lines):,} events: {len(published):,} transitions, retracted {retracted}"
          f"; on the wall clock alone: {len(on_wall):,} transitions, retracted {retracted_on_wall}")

    assert _retracted(published) == Counter()
    assert sum(_retracted(on_wall).values()) > 0  # the scenario does exercise what the clocks prevent
    by_clock = Counter(m["clock"] for m in published if m["status"] == "open")
    assert by_clock["event_time"] > 0
    expected = evaluate_records(records, registry=list(registry.values()), as_of=to_datetime(wall))
    # from the messages published (an exporter forgets the alerts of tickets it folded away)
    standing = {a: m for a, m in final_alerts(published).items() if m["status"] != "retracted"}
    assert {a: m["status"] for a, m in standing.items()} == {a["alert_id"]: a["status"] for a in expected["alerts"]}
    freshness = {live.exporter_id: live.clock.freshness(wall) for live in network.exporters.values()}
    assert {f["state"] for f in freshness.values()} == {"quiet"}


def test_a_late_batch_after_silence_retracts_only_what_the_silence_raised() -> None:
    quiet_one, other = "EXP-QUIET", "EXP-OTHER"
    registry = _registry([registration(quiet_one), registration(other)])
    network = LiveNetwork(registry, PolicyBook(DEFAULT_POLICY))
    start = "2026-03-01T10:00:00Z"
    wall = to_micros(utc(start))
    # both exporters are live; each opens a ticket, and the other's goes unanswered for good
    for exporter in (quiet_one, other):
        for t in (1, 2):
            network.add(wall, EVENT_LINE.validate_python(ticket(f"{exporter}-o{t}", "opened", start, exporter=exporter,
                                                                ticket_id=f"T-{t}")), wall)
    published = network.tick(wall, 2 * SECOND, lambda _: CAUGHT_UP)
    # the first exporter falls silent (its systems buffer); the other keeps sending heartbeats of data
    deadline = wall + 48 * HOUR
    while wall < deadline + HOUR:
        wall += 10 * MINUTE
        beat = EVENT_LINE.validate_python(ticket(f"{other}-b{wall}", "opened", stamp(wall), exporter=other,
                                                 ticket_id=f"B-{wall}"))
        network.add(wall, beat, wall)
        published.extend(network.tick(wall, 2 * SECOND, lambda _: CAUGHT_UP))
    raised_in_silence = {m["alert_id"] for m in published
                         if m["exporter_id"] == quiet_one and m["status"] == "open" and m["severity"] == "breach"
                         and m["obligation"] == "response_48h"}
    assert len(raised_in_silence) == 2  # its two deadlines fired on the wall clock while it was quiet
    assert {m["clock"] for m in published if m["alert_id"] in raised_in_silence} == {"wall_clock"}
    # its buffered batch arrives: ticket T-1 had been answered in time, T-2 had not
    late = [ticket(f"{quiet_one}-r1", "responded", "2026-03-02T09:00:00Z", exporter=quiet_one, ticket_id="T-1"),
            ticket(f"{quiet_one}-x", "opened", "2026-03-02T10:00:00Z", exporter=quiet_one, ticket_id="T-9")]
    after, wall = _replay(network, _lines(late), wall, tick_every=1)
    for _ in range(3):
        wall += SECOND
        after.extend(network.tick(wall, 2 * SECOND, lambda _: CAUGHT_UP))
    retracted = {m["alert_id"] for m in after if m["status"] == "retracted"}
    warned_in_silence = {m["alert_id"] for m in published if m["exporter_id"] == quiet_one and m["status"] == "open"
                         and m["severity"] == "warning"}
    assert retracted and retracted <= raised_in_silence | warned_in_silence
    assert [m["subject"] for m in after if m["status"] == "retracted" and m["severity"] == "breach"] == ["T-1#1"]
    assert not [m for m in after if m["exporter_id"] == other and m["status"] == "retracted"]


def test_a_quiet_exporters_deadline_still_fires_on_the_wall_clock() -> None:
    registry = _registry([registration()])
    network = LiveNetwork(registry, PolicyBook(DEFAULT_POLICY), idle_after=5 * MINUTE)
    opened = "2026-03-01T10:00:00Z"
    wall = to_micros(utc(opened))
    network.add(wall, EVENT_LINE.validate_python(ticket("o1", "opened", opened)), wall)
    published: list[dict[str, Any]] = []
    deadline = wall + 48 * HOUR
    while wall <= deadline:
        wall += MINUTE
        published.extend(network.tick(wall, 2 * SECOND, lambda _: CAUGHT_UP))
    breaches = [m for m in published if m["severity"] == "breach" and m["obligation"] == "response_48h"]
    assert [(m["subject"], m["status"], m["clock"]) for m in breaches] == [("T-1#1", "open", "wall_clock")]
    assert network.exporters[EXPORTER].clock.state is ClockState.quiet


def test_only_a_deadline_passing_on_the_wall_clock_counts_as_fired_by_the_clock() -> None:
    """A ticket delivered late: its at-risk point is behind the exporter's own data (raised on
    event time once the clock gets there), its deadline still ahead; only the deadline is a
    timer's work, whose lateness monitor_deadline_lag_seconds measures."""
    registry = _registry([registration()])
    network = LiveNetwork(registry, PolicyBook(DEFAULT_POLICY), idle_after=5 * MINUTE)
    wall = T0
    opened = wall - 48 * HOUR + 10 * MINUTE
    network.add(opened, EVENT_LINE.validate_python(ticket("o1", "opened", stamp(opened))), wall)
    network.add(wall - MINUTE, EVENT_LINE.validate_python(outlet("h1", "OUT-1", stamp(wall - MINUTE))), wall)
    held = InputProgress(caught_up=False, reached=opened)  # the ticket's partition still being read
    published = network.tick(wall, 2 * SECOND, lambda _: held)
    fired = list(network.fired)
    for step in range(1, 13):
        published += network.tick(wall + step * MINUTE, 2 * SECOND, lambda _: CAUGHT_UP)
        fired += network.fired
    opened_alerts = {m["severity"]: m for m in published if m["subject"] == "T-1#1" and m["status"] == "open"}
    assert opened_alerts["warning"]["clock"] == "event_time" and opened_alerts["breach"]["clock"] == "wall_clock"
    assert fired == [opened + 48 * HOUR]


def test_no_figures_are_published_before_an_exporters_clock_has_started() -> None:
    """While the worker still reads its input and nothing of an exporter has come, its clock has
    not started: a snapshot "as of" 1970 would be a figure of no time (and a store would carry
    it over every day since). Its figures come once its clock starts, as of that instant."""
    network = LiveNetwork(_registry([registration()]), PolicyBook(DEFAULT_POLICY))
    network.exporter(EXPORTER)
    reading = InputProgress(caught_up=False, reached=0)
    network.tick(T0, 2 * SECOND, lambda _: reading)
    assert network.exporters[EXPORTER].clock.now == 0
    assert network.snapshots(0, wall=T0) == []

    opened = stamp(T0 - HOUR)
    network.add(T0 - HOUR, EVENT_LINE.validate_python(ticket("o1", "opened", opened)), T0)
    network.tick(T0, 2 * SECOND, lambda _: CAUGHT_UP)
    snapshots = network.snapshots(0, wall=T0)
    assert [(s["market"], s["as_of"]) for s in snapshots] == [("KE", opened)]  # on its event time
