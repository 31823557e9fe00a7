"""One exporter judged live: events arrive in any order, a clock runs, alerts change state.

This is the stream worker's use of the obligation core, with no Kafka in it, so it can be
tested on its own. It keeps the promise of OBLIGATIONS.md (Time): at any moment the alerts
it has published, retracted ones aside, are those `evaluate` gives for the same events and
the same "now".

- **Tickets** are judged from each ticket's own events as they arrive, at the clock, with
  the core's `ticket_cycles` and `cycle_alerts`: an answer that arrives late but occurred
  in time retracts the provisional breach. Each ticket is judged again at its next at-risk
  point or deadline, so a breach is raised by the clock with no further event.
- **State obligations** (parts, coverage, network size, authorisation) are a sequence of
  episodes over event time, so the core must see the events in event-time order. Events
  wait in a reorder buffer until the watermark (the clock less a short reorder window)
  passes them. An event that comes later than that is put in its place: the exporter's
  engine is restored from the last checkpoint before it and the events since are applied
  again, and the alerts that differ are corrected (opened, resolved or retracted).
  Checkpoints reach back `horizon`; a state event older than that can no longer re-judge
  history and is reported as a finding.
- **Bounded state.** The engine is checkpointed in memory every quarter horizon of event time
  (and every `checkpoint_every` events, should they come faster), on the way through a
  backlog released at once too, so what is kept spans at most the horizon and a quarter.
  What lies before the oldest checkpoint is folded away: a ticket whose
  cycles are all answered or cancelled, and whose events are all older, leaves its outcomes
  in the counters, its cycle count and state (should it be reopened), and nothing else; its
  events, its alerts (final by then) and the event ids seen before are forgotten; so are the
  state alerts (parts, coverage, network size) resolved, or retracted, before it. A step of
  such a ticket older than the oldest checkpoint is reported as a finding, not counted. A
  ticket with a cycle still waiting is kept whole, however old.
"""

from __future__ import annotations

import bisect
import copy
import heapq
import itertools
import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from monitor.contracts.events import ServiceTicketEvent
from monitor.contracts.outputs import AlertClock, ClockState
from monitor.contracts.registry import ExporterRegistration
from monitor.obligations.alerts import AlertRecord
from monitor.obligations.clock import IDLE_AFTER, LAG_BOUND, ExporterClock, InputProgress
from monitor.obligations.engine import ComplianceEngine, InputEvent
from monitor.obligations.policy import PolicyBook
from monitor.obligations.quality import Finding
from monitor.obligations.response import (
    Outcome,
    ResponseTally,
    TicketLedger,
    TicketStep,
    cycle_alerts,
    next_change,
    ticket_cycles,
    ticket_end,
)
from monitor.obligations.timebase import HOUR, Micros, stamp, to_micros

log = logging.getLogger(__name__)

CHECKPOINT_EVERY = 5000  # events between two in-memory checkpoints of an exporter's engine, at most
CHECKPOINTS_PER_HORIZON = 4  # and at least this many per horizon of event time, so that what is kept
# (the events since the oldest checkpoint, the tickets they touch, the event ids seen) spans at most
# 1 + 1/4 of the horizon, however slowly the exporter's events come
MAX_FINDINGS = 1000  # data-quality findings a live exporter keeps
Entry = tuple[Micros, str, InputEvent]  # (occurred_at, event_id, event): ordered as the core reads them
Published = dict[str, dict[str, Any]]  # alert_id -> the last ComplianceAlert message published for it


@dataclass(slots=True)
class _Checkpoint:
    now: Micros | None  # None: the engine before any event
    engine: ComplianceEngine


@dataclass(slots=True)
class _TicketView:
    """What a ticket contributes now: its alerts by id and its cycles' outcomes per market."""

    alerts: dict[str, AlertRecord] = field(default_factory=dict)
    outcomes: list[tuple[str, Outcome, float | None]] = field(default_factory=list)
    settled: bool = False  # every cycle answered or cancelled, and no step to come


@dataclass(slots=True)
class Changes:
    """What one flush produced: alert messages to publish and the markets whose figures changed,
    and, for the alerts the clock raised (an at-risk point or deadline that came with no event),
    the instant each fell due."""

    alerts: list[dict[str, Any]] = field(default_factory=list)
    markets: set[str] = field(default_factory=set)
    fired: list[Micros] = field(default_factory=list)


class LiveExporter:
    """Everything a worker knows about one exporter, and what it has published about it."""

    def __init__(self, exporter_id: str, registry: Mapping[str, ExporterRegistration], policy: PolicyBook, *,
                 horizon: Micros = 7 * 24 * HOUR, checkpoint_every: int = CHECKPOINT_EVERY,
                 published: Published | None = None, clock: ExporterClock | None = None) -> None:
        self.exporter_id = exporter_id
        self.clock = clock if clock is not None else ExporterClock()
        self.freshness_reported: tuple[Any, ...] | None = None  # the clock's `reported()` last put in snapshots
        self.registry = registry
        self.policy = policy
        self.horizon = horizon
        self.checkpoint_every = checkpoint_every
        self.seen: dict[str, Micros] = {}  # event_id -> occurred_at of the copy kept
        self.applied: list[Entry] = []  # events the engine has seen, in order, back to the oldest checkpoint
        self.pending: list[Entry] = []  # heap: events waiting for the watermark
        self.tickets: dict[str, TicketLedger] = {}
        self.views: dict[str, _TicketView] = {}
        self.tallies: dict[str, ResponseTally] = {}
        self.due: list[tuple[Micros, str]] = []  # heap: (instant, ticket_id) to judge again
        self.dirty_tickets: set[str] = set()
        self.findings: deque[Finding] = deque(maxlen=MAX_FINDINGS)  # the latest (each is also logged)
        self.folded: dict[str, tuple[int, str | None]] = {}  # ticket -> its cycles and state when folded
        self.forgotten: list[str] = []  # alert ids folded away, for the worker to forget too
        self.published: Published = published if published is not None else {}
        self._rebuild_from: Micros | None = None  # earliest late instant since the last flush
        self._since_checkpoint = 0
        self._engine_changed = False
        self._state_seen = 0
        self._state_open: dict[str, AlertRecord] = {}  # published open, to watch for their resolution
        self._full_diff = True  # compare every state alert with what was published (at start, after a rebuild)
        self._published_tickets: dict[str, list[str]] | None = None  # ticket -> alert ids published before start
        self.engine = self._fresh_engine()
        self.checkpoints = [_Checkpoint(None, self._copy(self.engine))]

    # ---- arrival ------------------------------------------------------------------------------

    def add(self, at: Micros, event: InputEvent) -> bool:
        """Take one validated event of this exporter; False when its event_id was already seen.

        Of two different messages with one event_id the one that sorts first (by occurred_at,
        then content) is kept, as `evaluate` does, and the other is reported as a finding.
        """
        known_at = self.seen.get(event.event_id)
        if known_at is not None:
            return self._duplicate(at, event, known_at)
        self.seen[event.event_id] = at
        self._place(at, event)
        return True

    def _place(self, at: Micros, event: InputEvent) -> None:
        floor = self.checkpoints[0].now
        beyond = floor is not None and at <= floor
        if isinstance(event, ServiceTicketEvent):
            if beyond and event.ticket_id in self.folded:
                self._too_late(at, event)
                return
            self._ticket_step(at, event)
        entry = (at, event.event_id, event)
        now = self.engine.now
        if now is not None and at <= now:
            if beyond:
                self._too_late(at, event)
                return
            bisect.insort(self.applied, entry, key=_order)
            self._rebuild_from = at if self._rebuild_from is None else min(self._rebuild_from, at)
        else:
            heapq.heappush(self.pending, entry)

    def _duplicate(self, at: Micros, event: InputEvent, known_at: Micros) -> bool:
        known = self._find(known_at, event.event_id)
        if known is None or known == event:
            return False
        keep, drop = sorted(((at, event), (known_at, known)), key=lambda e: (e[0], e[1].model_dump_json()))
        self.findings.append(Finding(
            "conflicting_duplicate", self.exporter_id, event.event_id,
            f"a different message with event_id {event.event_id!r} and occurred_at {stamp(drop[0])} was "
            f"set aside: {drop[1].model_dump_json()}", [event.event_id]))
        if keep[1] is known:
            return False
        log.warning("exporter %s: event %s replaced by a copy that sorts first", self.exporter_id, event.event_id)
        self._remove(known_at, known)
        self.seen[event.event_id] = at
        self._place(at, event)
        return True

    def _find(self, at: Micros, event_id: str) -> InputEvent | None:
        """The copy kept of an event, applied or still waiting (None once beyond the horizon)."""
        for entry in (*self._applied_at(at), *self.pending):
            if entry[1] == event_id:
                return entry[2]
        return None

    def _applied_at(self, at: Micros) -> list[Entry]:
        low = bisect.bisect_left(self.applied, at, key=lambda e: e[0])
        high = bisect.bisect_right(self.applied, at, key=lambda e: e[0])
        return self.applied[low:high]

    def _remove(self, at: Micros, event: InputEvent) -> None:
        entry = (at, event.event_id, event)
        if entry in self.pending:
            self.pending.remove(entry)
            heapq.heapify(self.pending)
        else:
            self.applied.remove(entry)
            self._rebuild_from = at if self._rebuild_from is None else min(self._rebuild_from, at)
        if isinstance(event, ServiceTicketEvent):
            ledger = self.tickets[event.ticket_id]
            ledger.steps = [s for s in ledger.steps if s.event_id != event.event_id]
            self.dirty_tickets.add(event.ticket_id)

    def _too_late(self, at: Micros, event: InputEvent) -> None:
        if isinstance(event, ServiceTicketEvent) and event.ticket_id in self.folded:
            effect = f"ticket {event.ticket_id} was settled and folded before then; the step is not counted"
        else:
            effect = ("it no longer re-judges parts, coverage or network history (a ticket step still counts "
                      "for its ticket)")
        kind = "ticket step" if isinstance(event, ServiceTicketEvent) else "state event"
        self.findings.append(Finding(
            "beyond_reorder_horizon", self.exporter_id, event.event_id,
            f"{kind} at {stamp(at)} arrived after its exporter's history was judged past "
            f"{stamp(self.checkpoints[0].now or 0)}; {effect}", [event.event_id]))
        log.warning("exporter %s: event %s at %s is older than the re-judging horizon",
                    self.exporter_id, event.event_id, stamp(at))

    def _ticket_step(self, at: Micros, event: ServiceTicketEvent) -> None:
        ledger = self.tickets.get(event.ticket_id)
        if ledger is None:  # a new ticket, or one folded away that comes back
            ledger = self.tickets[event.ticket_id] = TicketLedger(event.ticket_id,
                                                                 *self.folded.pop(event.ticket_id, (0, None)))
        ledger.add(TicketStep.make(at, event.event_id, event.type, event.exporter_id, event.market, event.vin))
        self.dirty_tickets.add(event.ticket_id)

    def registry_changed(self) -> None:
        """Its registration (or an authorising automaker's) changed: judge everything again
        under the new one, as `evaluate` would with that registry."""
        self.engine = self._fresh_engine()
        self.checkpoints = [_Checkpoint(None, self._copy(self.engine))]
        self._rebuild_from = self.applied[0][0] if self.applied else None
        self._engine_changed = True
        self._resync_state_alerts()

    def taken_over(self) -> None:
        """Restored from a checkpoint by another worker: compare every alert with what was
        published (the record may be ahead of the checkpoint), report its figures again, and
        judge again under the registry as it is now if the exporter's registration changed."""
        self._full_diff = True
        self.freshness_reported = None
        fresh = self._fresh_engine().books.get(self.exporter_id)
        mine = self.engine.books.get(self.exporter_id)
        if (fresh and (fresh.registration, fresh.wmis)) != (mine and (mine.registration, mine.wmis)):
            self.registry_changed()

    # ---- the clock ----------------------------------------------------------------------------

    def flush(self, clock: Micros, watermark: Micros) -> Changes:
        """Bring the judgement up to `clock` (tickets) and `watermark` (state obligations) and
        return the alert messages that changed and the markets whose figures may have moved."""
        changes = Changes()
        watermark = min(watermark, clock)
        floor = self.checkpoints[0].now
        if self._rebuild_from is not None:
            self._rebuild(self._rebuild_from)
        self._release(watermark)
        if self._engine_changed:
            self._state_changes(clock, changes)
            changes.markets.update(self.markets())
            self._engine_changed = False
        came_due: dict[str, set[Micros]] = {}
        while self.due and self.due[0][0] <= clock:
            instant, ticket_id = heapq.heappop(self.due)
            if ticket_id not in self.tickets:
                continue  # folded since: nothing of it was still to come
            self.dirty_tickets.add(ticket_id)
            came_due.setdefault(ticket_id, set()).add(instant)
        if self.dirty_tickets:
            self._judge_tickets(clock, changes, came_due)
        oldest = self.checkpoints[0].now
        if oldest is not None and oldest != floor:  # after the tickets are judged: those settled now fold too
            self._fold(oldest)
        return changes

    def _release(self, watermark: Micros) -> None:
        engine, pending = self.engine, self.pending
        judged = engine.judgements
        self._engine_changed |= bool(pending) and pending[0][0] <= watermark
        while pending and pending[0][0] <= watermark:
            at = pending[0][0]
            if self._checkpoint_due(at):  # a long backlog released at once is checkpointed on the way
                self._checkpoint()
            group = []
            while pending and pending[0][0] == at:
                group.append(heapq.heappop(pending))
            engine.apply_instant(at, [event for _, _, event in group])
            self.applied.extend(group)
            self._since_checkpoint += len(group)
        if engine.now is not None and watermark > engine.now:
            engine.advance(watermark)  # outlets going stale, policy versions taking effect
        self._engine_changed |= engine.judgements != judged
        if self._checkpoint_due(engine.now):
            self._checkpoint()

    def _checkpoint_due(self, at: Micros | None) -> bool:
        """Whether to checkpoint the engine before it moves past `at`: after `checkpoint_every`
        events, or a quarter horizon of event time, since the last checkpoint."""
        if not self._since_checkpoint or at is None or self.engine.now is None:
            return False
        return (self._since_checkpoint >= self.checkpoint_every
                or at - self._last_checkpoint_at() >= self.horizon // CHECKPOINTS_PER_HORIZON)

    def _last_checkpoint_at(self) -> Micros:
        """The event time of the latest checkpoint (the first event applied, before any)."""
        latest = self.checkpoints[-1].now
        if latest is not None:
            return latest
        return self.applied[0][0] if self.applied else self.engine.now or 0

    def _checkpoint(self) -> None:
        now = self.engine.now
        self.checkpoints.append(_Checkpoint(now, self._copy(self.engine)))
        self._since_checkpoint = 0
        if now is None:
            return
        # keep one checkpoint at least `horizon` old; what lies before it can no longer be re-judged
        while len(self.checkpoints) > 2 and (self.checkpoints[1].now or 0) <= now - self.horizon:
            self.checkpoints.pop(0)
        oldest = self.checkpoints[0].now
        if oldest is not None:
            del self.applied[: bisect.bisect_right(self.applied, oldest, key=lambda e: e[0])]

    def _fold(self, floor: Micros) -> None:
        """Forget what nothing can change any more: event ids seen before `floor` (a copy coming
        now is beyond the horizon anyway), and tickets settled before it."""
        self.seen = {event_id: at for event_id, at in self.seen.items() if at > floor}
        settled = [ticket_id for ticket_id, view in self.views.items()
                   if view.settled and ticket_id not in self.dirty_tickets
                   and self.tickets[ticket_id].steps[-1].at <= floor]
        for ticket_id in settled:
            self.folded[ticket_id] = ticket_end(self.tickets.pop(ticket_id))
            for alert_id in self.views.pop(ticket_id).alerts:
                if self.published.pop(alert_id, None) is not None:
                    self.forgotten.append(alert_id)
        self._fold_state_alerts(floor)

    def _fold_state_alerts(self, floor: Micros) -> None:
        """Forget the state alerts final before `floor` (resolved, or retracted after opening,
        before it), in the engine, in each checkpoint a rebuild could start from and in what was
        published: judging again from the oldest checkpoint cannot change them."""
        seen = self.engine.state_alerts()[: self._state_seen]
        gone = {id(alert) for alert in self.engine.forget_resolved(floor)}
        self._state_seen -= sum(1 for alert in seen if id(alert) in gone)
        for kept in self.checkpoints:
            kept.engine.forget_resolved(floor)
        for alert_id, message in list(self.published.items()):
            if message["obligation"] != "response_48h" and _final_before(message, floor):
                self._forget(alert_id)

    def _forget(self, alert_id: str) -> None:
        del self.published[alert_id]
        self.forgotten.append(alert_id)

    def _rebuild(self, late: Micros) -> None:
        """Judge the state obligations again from the last checkpoint before `late`."""
        self._rebuild_from = None
        index = len(self.checkpoints) - 1
        while index > 0 and (self.checkpoints[index].now or 0) >= late:
            index -= 1
        base = self.checkpoints[index]
        del self.checkpoints[index + 1 :]
        target = self.engine.now
        self.engine = engine = self._copy(base.engine)
        start = 0 if base.now is None else bisect.bisect_right(self.applied, base.now, key=lambda e: e[0])
        replayed = 0
        for at, group in itertools.groupby(self.applied[start:], key=lambda e: e[0]):
            engine.apply_instant(at, [event for _, _, event in group])
            replayed += 1
        if target is not None and (engine.now is None or target > engine.now):
            engine.advance(target)
        log.debug("exporter %s: re-judged %d instants from %s", self.exporter_id, replayed,
                  stamp(base.now) if base.now is not None else "the start")
        self._engine_changed = True
        self._resync_state_alerts()

    def _resync_state_alerts(self) -> None:
        """After a rebuild, compare every state alert with what was published."""
        self._full_diff = True

    # ---- alerts -------------------------------------------------------------------------------

    def _state_changes(self, clock: Micros, changes: Changes) -> None:
        records = self.engine.state_alerts()
        if self._full_diff:
            current = {record.alert_id for record in records}
            floor = self.checkpoints[0].now
            for alert_id, message in list(self.published.items()):
                if message["obligation"] != "response_48h" and alert_id not in current:
                    if floor is not None and _final_before(message, floor):
                        self._forget(alert_id)  # folded away from a checkpoint, not from its record
                    else:
                        self._retract(alert_id, clock, changes)
            fresh = records
            self._state_open = {}
            self._full_diff = False
        else:
            fresh = records[self._state_seen :]
            for alert_id, record in list(self._state_open.items()):
                if record.resolved_at is not None:
                    self._publish(record, clock, changes)
                    del self._state_open[alert_id]
        for record in fresh:
            self._publish(record, clock, changes)
            if record.resolved_at is None:
                self._state_open[record.alert_id] = record
        self._state_seen = len(records)

    def _judge_tickets(self, clock: Micros, changes: Changes, came_due: Mapping[str, set[Micros]]) -> None:
        policy = self.policy
        for ticket_id in self.dirty_tickets:
            ledger = self.tickets[ticket_id]
            cycles, _ = ticket_cycles(ledger, policy, clock)  # data-quality findings are the batch's
            view = self.views.get(ticket_id) or _TicketView()
            for market, outcome, hours in view.outcomes:
                self.tallies[market].remove(outcome, hours)
            outcomes = [(c.market, c.outcome, c.response_hours) for c in cycles]
            for market, outcome, hours in outcomes:
                tally = self.tallies.get(market) or self.tallies.setdefault(market, ResponseTally())
                tally.add(outcome, hours)
            alerts = {a.alert_id: a for cycle in cycles for a in cycle_alerts(cycle, clock)}
            fell_due = came_due.get(ticket_id)
            for alert in alerts.values():
                before = len(changes.alerts)
                self._publish(alert, clock, changes)
                opened = len(changes.alerts) > before and alert.alert_id not in view.alerts
                if (opened and fell_due and alert.opened_at in fell_due  # raised by the clock: opens as it fell due
                        and self.clock.raised_by(alert.opened_at) is AlertClock.wall_clock):  # not behind its data
                    changes.fired.append(alert.opened_at)
            withdrawn = [*(view.alerts.keys() - alerts.keys()), *self._published_before(ticket_id, alerts)]
            for alert_id in withdrawn:
                self._retract(alert_id, clock, changes)
            if outcomes != view.outcomes:
                changes.markets.update(m for m, _, _ in (*view.outcomes, *outcomes))
            due = next_change(ledger, cycles, clock)
            # a ticket with no cycle yet may still start one; one that came back after it was folded
            # (an answer's resolution, days later) may have none of its own
            started = bool(cycles) or ledger.prior_cycles > 0
            settled = due is None and started and all(c.closed_at() is not None for c in cycles)
            self.views[ticket_id] = _TicketView(alerts, outcomes, settled)
            if due is not None:
                heapq.heappush(self.due, (due, ticket_id))
        self.dirty_tickets.clear()

    def _published_before(self, ticket_id: str, alerts: dict[str, AlertRecord]) -> list[str]:
        """Alerts of this ticket published before this process took the exporter over and no
        longer raised: they are retracted too (found once, when the ticket is first judged here).

        The published record may be ahead of the checkpoint the exporter was restored from, so a
        ticket's view there (its alerts as of the checkpoint) does not show every alert published."""
        if self._published_tickets is None:
            self._published_tickets = {}
            for alert_id, message in self.published.items():
                if message["obligation"] == "response_48h":
                    self._published_tickets.setdefault(message["subject"].rsplit("#", 1)[0], []).append(alert_id)
        return [a for a in self._published_tickets.pop(ticket_id, ()) if a not in alerts]

    def _publish(self, record: AlertRecord, clock: Micros, changes: Changes) -> None:
        message = record.message(clock, self.accountable, raised_at=clock)
        message["clock"] = self.clock.raised_by(record.opened_at).value
        previous = self.published.get(record.alert_id)
        if previous is not None and _same(previous, message):
            return
        self.published[record.alert_id] = message
        changes.alerts.append(message)

    def _retract(self, alert_id: str, clock: Micros, changes: Changes) -> None:
        previous = self.published.get(alert_id)
        if previous is None or previous["status"] == "retracted":
            return
        message = {**previous, "status": "retracted", "raised_at": stamp(clock), "clock": "event_time"}
        self.published[alert_id] = message
        changes.alerts.append(message)

    # ---- figures ------------------------------------------------------------------------------

    @property
    def accountable(self) -> list[str]:
        book = self.engine.books.get(self.exporter_id)
        return book.accountable if book is not None else [self.exporter_id]

    def markets(self) -> list[str]:
        book = self.engine.books.get(self.exporter_id)
        return sorted(book.markets) if book is not None else []

    def figures(self, clock: Micros, markets: Iterable[str],
                freshness: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """ComplianceSnapshot documents (plain data) of the given markets, as of `clock`, with the
        exporter's data `freshness` when given."""
        book = self.engine.books.get(self.exporter_id)
        if book is None:
            return []
        rules = self.policy.at(clock)
        network = self.engine.exporter_figure(self.exporter_id, rules)["network_size"]
        empty = ResponseTally()
        snapshots = []
        for market in sorted(markets):
            if market not in book.markets:
                continue  # known from a ticket only, until the watermark reaches the ticket's event
            response = (self.tallies.get(market) or empty).figure()
            snapshot = {**self.engine.market_figure(self.exporter_id, market, response),
                        "network_size": network, "as_of": stamp(clock), "policy_version": rules.version}
            if freshness is not None:
                snapshot["freshness"] = freshness
            snapshots.append(snapshot)
        return snapshots

    # ---- helpers ------------------------------------------------------------------------------

    def _fresh_engine(self) -> ComplianceEngine:
        exporter_id = self.exporter_id
        return ComplianceEngine(self.registry, self.policy, owns=exporter_id.__eq__, keep_tickets=False)

    def _copy(self, engine: ComplianceEngine) -> ComplianceEngine:
        """A deep copy that shares the registry and the policy (read-only, and large)."""
        memo: dict[int, Any] = {id(self.registry): self.registry, id(self.policy): self.policy}
        for registration in self.registry.values():
            memo[id(registration)] = registration
        return copy.deepcopy(engine, memo)


def _order(entry: Entry) -> tuple[Micros, str]:
    return entry[0], entry[1]


def _final_before(message: dict[str, Any], floor: Micros) -> bool:
    """Whether a published state alert was final before `floor`: resolved, or opened and
    retracted since, by then."""
    status = message["status"]
    if status not in ("resolved", "retracted"):
        return False
    at = message["resolved_at"] if status == "resolved" else message["opened_at"]
    return to_micros(datetime.fromisoformat(at)) <= floor


def _same(previous: dict[str, Any], message: dict[str, Any]) -> bool:
    """Equal but for when, and by which clock, the monitor noticed it (a re-judgement that changes
    nothing publishes nothing)."""
    return all(previous.get(k) == v for k, v in message.items() if k not in ("raised_at", "clock"))


class LiveNetwork:
    """The exporters one worker answers for, over the whole registry it knows."""

    def __init__(self, registry: Mapping[str, ExporterRegistration], policy: PolicyBook, *,
                 horizon: Micros = 7 * 24 * HOUR, published: Callable[[str], Published] | None = None,
                 lag_bound: Micros = LAG_BOUND, idle_after: Micros = IDLE_AFTER,
                 checkpoint_every: int = CHECKPOINT_EVERY) -> None:
        self.registry: dict[str, ExporterRegistration] = dict(registry)
        self.policy = policy
        self.horizon = horizon
        self.checkpoint_every = checkpoint_every
        self.lag_bound, self.idle_after = lag_bound, idle_after
        self.exporters: dict[str, LiveExporter] = {}
        self._published = published
        self.dirty_markets: dict[str, set[str]] = {}
        self.fired: list[Micros] = []  # of the last flush: when each alert the clock raised fell due

    def exporter(self, exporter_id: str) -> LiveExporter:
        live = self.exporters.get(exporter_id)
        if live is None:
            published = self._published(exporter_id) if self._published is not None else None
            live = self.exporters[exporter_id] = LiveExporter(
                exporter_id, self.registry, self.policy, horizon=self.horizon, published=published,
                clock=ExporterClock(self.lag_bound, self.idle_after), checkpoint_every=self.checkpoint_every)
        return live

    def adopt(self, live: LiveExporter) -> None:
        """Judge an exporter restored from a checkpoint (a takeover)."""
        live.registry, live.horizon = self.registry, self.horizon
        self.exporters[live.exporter_id] = live

    def add(self, at: Micros, event: InputEvent, received_at: Micros | None = None) -> bool:
        """Take one validated event (received at wall-clock `received_at`, for its exporter's
        clock); False for a duplicate."""
        live = self.exporter(event.exporter_id)
        if received_at is not None:
            live.clock.received(at, received_at)
        return live.add(at, event)

    def register(self, registration: ExporterRegistration) -> None:
        """A registration arrived (the latest wins): the exporter, and the distributors that an
        automaker authorised, are judged again under it."""
        if self.registry.get(registration.exporter_id) == registration:
            return
        self.registry[registration.exporter_id] = registration
        for exporter_id, live in self.exporters.items():
            mine = self.registry.get(exporter_id)
            if exporter_id == registration.exporter_id or (
                    mine is not None and registration.exporter_id in mine.authorised_by):
                live.registry = self.registry
                live.registry_changed()

    def drop(self, exporter_ids: Iterable[str]) -> None:
        """Forget exporters this worker no longer answers for (their partition moved)."""
        for exporter_id in exporter_ids:
            self.exporters.pop(exporter_id, None)
            self.dirty_markets.pop(exporter_id, None)

    def flush(self, clock: Micros, watermark: Micros,
              clock_of: Callable[[str], tuple[Micros, Micros]] | None = None) -> list[dict[str, Any]]:
        """Alert messages that changed since the last flush; markets to snapshot accumulate in
        `dirty_markets` until `snapshots` takes them. `clock_of` gives an exporter a clock and
        watermark of its own (a worker catching up judges each partition at its own pace)."""
        alerts: list[dict[str, Any]] = []
        self.fired = []
        for exporter_id, live in self.exporters.items():
            changes = live.flush(*(clock_of(exporter_id) if clock_of else (clock, watermark)))
            alerts.extend(changes.alerts)
            self.fired.extend(changes.fired)
            if changes.markets:
                self.dirty_markets.setdefault(exporter_id, set()).update(changes.markets)
        return alerts

    def tick(self, wall: Micros, window: Micros, progress_of: Callable[[str], InputProgress]) -> list[dict[str, Any]]:
        """Move each exporter's own clock (OBLIGATIONS.md, Time) to wall-clock `wall` and judge it
        there; `window` is how long state events wait for earlier ones, and `progress_of` says
        how far the worker has read the input of an exporter's partition. Returns the alert
        messages that changed, as `flush` does."""
        alerts: list[dict[str, Any]] = []
        self.fired = []
        for exporter_id, live in self.exporters.items():
            progress = progress_of(exporter_id)
            clock = live.clock.advance(wall, progress)
            changes = live.flush(clock, live.clock.watermark(window, progress))
            alerts.extend(changes.alerts)
            if live.clock.state is not ClockState.backlog:  # on event time, a deadline fires when data shows it
                self.fired.extend(changes.fired)
            freshness = live.clock.reported()
            if freshness != live.freshness_reported:  # its freshness moved: every market says so
                live.freshness_reported = freshness
                changes.markets.update(live.markets())
            if changes.markets:
                self.dirty_markets.setdefault(exporter_id, set()).update(changes.markets)
        return alerts

    def snapshots(self, clock: Micros, clock_of: Callable[[str], Micros] | None = None,
                  wall: Micros | None = None) -> list[dict[str, Any]]:
        """ComplianceSnapshot documents of every market whose figures may have changed; with the
        wall-clock instant `wall`, as of each exporter's own clock and with its freshness."""
        result = []
        waiting: dict[str, set[str]] = {}
        for exporter_id, markets in self.dirty_markets.items():
            live = self.exporters[exporter_id]
            if wall is not None:
                if not live.clock.now:  # its clock has not started (no data yet, the input still read): as of no time
                    waiting[exporter_id] = markets
                    continue
                result.extend(live.figures(live.clock.now, markets, freshness=live.clock.freshness(wall)))
            else:
                result.extend(live.figures(clock_of(exporter_id) if clock_of else clock, markets))
        self.dirty_markets = waiting
        return result
