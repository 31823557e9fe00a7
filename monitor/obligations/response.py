"""48-hour maintenance response: ticket cycles, their outcomes, warnings and breaches.

A ticket's outcome is a pure function of its events and "now", recomputed from the
ticket's own (small) event list, so late and out-of-order events need no special case.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from monitor.contracts.events import TicketEventType
from monitor.contracts.outputs import Obligation, Severity
from monitor.obligations.alerts import AlertRecord
from monitor.obligations.policy import PolicyBook
from monitor.obligations.quality import Finding
from monitor.obligations.timebase import Micros, hours, stamp

# Order of a ticket's events at one instant: a cycle starts before it can be answered,
# and a resolution closes a cycle before a reopening starts the next.
_RANK = {
    TicketEventType.opened: 0,
    TicketEventType.responded: 1,
    TicketEventType.resolved: 2,
    TicketEventType.cancelled: 3,
    TicketEventType.reopened: 4,
}


class TicketStep(NamedTuple):
    """One ticket event, reduced to what the rules need; ordered as the rules read them.

    Tuples order by (at, rank, event_id) first, and event ids are unique within a
    ticket, so the later fields never decide an order.
    """

    at: Micros
    rank: int
    event_id: str
    type: TicketEventType
    exporter_id: str
    market: str
    vin: str

    @classmethod
    def make(cls, at: Micros, event_id: str, type_: TicketEventType, exporter_id: str, market: str,
             vin: str) -> TicketStep:
        return cls(at, _RANK[type_], event_id, type_, exporter_id, market, vin)

    def evidence(self) -> dict[str, str]:
        return {"event_id": self.event_id, "type": self.type.value,
                "occurred_at": stamp(self.at)}


class Outcome(StrEnum):
    compliant = "compliant"
    breached = "breached"
    withdrawn = "withdrawn"
    pending = "pending"


@dataclass(slots=True)
class Cycle:
    ticket_id: str
    number: int
    start: TicketStep
    deadline: Micros
    warn_at: Micros
    policy_version: str
    answer: TicketStep | None
    cancel: TicketStep | None
    outcome: Outcome

    @property
    def exporter_id(self) -> str:
        return self.start.exporter_id

    @property
    def market(self) -> str:
        return self.start.market

    @property
    def subject(self) -> str:
        return f"{self.ticket_id}#{self.number}"

    @property
    def response_hours(self) -> float | None:
        """Hours from start to answer, for answered cycles (compliant or late)."""
        if self.answer is None or self.outcome not in (Outcome.compliant, Outcome.breached):
            return None
        return hours(self.answer.at - self.start.at)

    def closed_at(self) -> Micros | None:
        """When the cycle stopped waiting: its answer or its cancellation, whichever came first."""
        closers = [step.at for step in (self.answer, self.cancel) if step is not None]
        return min(closers) if closers else None


class TicketLedger:
    """Every event of one ticket, de-duplicated by event_id, kept in rule order.

    A live worker folds a ticket that has long been settled into its counters and forgets its
    events; should the ticket come back (reopened much later), its new ledger starts from what
    the folded one ended with: `prior_cycles` cycles, and the ticket's `prior_state`."""

    __slots__ = ("prior_cycles", "prior_state", "steps", "ticket_id")

    def __init__(self, ticket_id: str, prior_cycles: int = 0, prior_state: str | None = None) -> None:
        self.ticket_id = ticket_id
        self.steps: list[TicketStep] = []
        self.prior_cycles = prior_cycles
        self.prior_state = prior_state

    def add(self, step: TicketStep) -> bool:
        """Record an event; False when its event_id was already seen.

        A ticket has a handful of events, so a scan costs less than keeping a set of ids
        (which was the largest part of an open cycle's memory).
        """
        if any(known.event_id == step.event_id for known in self.steps):
            return False
        bisect.insort(self.steps, step)
        return True


def _cycle_starts(ledger: TicketLedger, steps: Sequence[TicketStep]) -> tuple[list[int], str | None, list[Finding]]:
    """Where in `steps` each cycle starts, the ticket's state after them, and inconsistent data."""
    findings: list[Finding] = []
    starts: list[int] = []
    state = ledger.prior_state  # None before any cycle, then "open", "resolved" or "cancelled"
    for index, step in enumerate(steps):
        kind = step.type
        if kind is TicketEventType.opened:
            if state == "open":
                findings.append(Finding("duplicate_open", step.exporter_id, ledger.ticket_id,
                                        "opened again while a cycle was open; ignored", [step.event_id]))
                continue
            starts.append(index)
            state = "open"
        elif kind is TicketEventType.reopened:
            if state != "resolved":
                findings.append(Finding("reopen_without_resolution", step.exporter_id, ledger.ticket_id,
                                        "reopened while not resolved; starts no cycle", [step.event_id]))
                continue
            starts.append(index)
            state = "open"
        elif kind is TicketEventType.resolved and state == "open":
            state = "resolved"
        elif kind is TicketEventType.cancelled and state == "open":
            state = "cancelled"
    return starts, state, findings


def ticket_end(ledger: TicketLedger) -> tuple[int, str | None]:
    """What a ticket continues from once its events are folded away: its cycles so far and its
    state after them (`TicketLedger.prior_cycles` and `prior_state`)."""
    starts, state, _ = _cycle_starts(ledger, ledger.steps)
    return ledger.prior_cycles + len(starts), state


def ticket_cycles(
    ledger: TicketLedger, policy: PolicyBook, now: Micros
) -> tuple[list[Cycle], list[Finding]]:
    """The ticket's cycles with their outcomes as of `now`, and any inconsistent data.

    Only steps at or before `now` exist for this judgement.
    """
    steps = [s for s in ledger.steps if s.at <= now]
    starts, _, findings = _cycle_starts(ledger, steps)

    first_start = starts[0] if starts else len(steps)
    early = [s.event_id for s in steps[:first_start]
             if s.type in (TicketEventType.responded, TicketEventType.resolved) and ledger.prior_state is None]
    if early:
        findings.append(Finding("answer_before_cycle_start", steps[0].exporter_id, ledger.ticket_id,
                                "an answer precedes every cycle start of the ticket", early))

    cycles = []
    for number, begin in enumerate(starts, start=ledger.prior_cycles + 1):
        index = number - ledger.prior_cycles
        end = starts[index] if index < len(starts) else len(steps)
        cycles.append(_judge(ledger.ticket_id, number, steps[begin], steps[begin + 1 : end], policy, now))
    return cycles, findings


def _judge(ticket_id: str, number: int, start: TicketStep, window: Sequence[TicketStep],
           policy: PolicyBook, now: Micros) -> Cycle:
    rules = policy.at(start.at)
    deadline = start.at + rules.deadline
    responded = next((s for s in window if s.type is TicketEventType.responded), None)
    answer = responded or next((s for s in window if s.type is TicketEventType.resolved), None)
    cancel = next((s for s in window if s.type is TicketEventType.cancelled), None)
    if answer is not None and cancel is not None:
        if answer.at <= cancel.at:
            cancel = None  # answered first (or at the same instant): the cancellation changes nothing
        else:
            answer = None  # withdrawn before any answer

    if answer is not None:
        outcome = Outcome.compliant if answer.at <= deadline else Outcome.breached
    elif cancel is not None:
        outcome = Outcome.withdrawn if cancel.at <= deadline else Outcome.breached
    else:
        outcome = Outcome.pending if deadline > now else Outcome.breached
    return Cycle(ticket_id, number, start, deadline, start.at + rules.warn_at, rules.version,
                 answer, cancel, outcome)


def cycle_alerts(cycle: Cycle, now: Micros) -> list[AlertRecord]:
    """The warning and breach alerts a cycle has raised by `now`, with their status."""
    alerts: list[AlertRecord] = []
    closed = cycle.closed_at()
    warned = now >= cycle.warn_at and (closed is None or closed > cycle.warn_at)
    if not warned and cycle.outcome is not Outcome.breached:
        return alerts
    base = {
        "ticket_id": cycle.ticket_id,
        "cycle": cycle.number,
        "vin": cycle.start.vin,
        "start": cycle.start.evidence(),
        "deadline": stamp(cycle.deadline),
        "answer": cycle.answer.evidence() if cycle.answer else None,
        "cancellation": cycle.cancel.evidence() if cycle.cancel else None,
    }
    if warned:
        warning = AlertRecord(cycle.exporter_id, cycle.market, Obligation.response_48h, Severity.warning,
                              cycle.subject, cycle.warn_at, cycle.policy_version,
                              {**base, "at_risk_from": stamp(cycle.warn_at)})
        end = cycle.deadline if closed is None else min(closed, cycle.deadline)
        warning.resolved_at = end if end <= now else None
        alerts.append(warning)
    if cycle.outcome is Outcome.breached:
        breach = AlertRecord(cycle.exporter_id, cycle.market, Obligation.response_48h, Severity.breach,
                             cycle.subject, cycle.deadline, cycle.policy_version,
                             {**base, "response_hours": cycle.response_hours})
        breach.resolved_at = closed if closed is not None and closed <= now else None
        alerts.append(breach)
    return alerts


def percentile(sorted_values: Sequence[float], share: float) -> float:
    """Linear interpolation between closest ranks (numpy's default method)."""
    position = (len(sorted_values) - 1) * share
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


class ResponseTally:
    """Outcome counts and answered response hours of a set of cycles, kept as cycles come and go.

    The batch builds one per market from every cycle; a live worker keeps one per market
    and swaps a ticket's cycles in and out as the ticket's judgement changes.
    """

    __slots__ = ("answered", "counts")

    def __init__(self) -> None:
        self.counts = dict.fromkeys(Outcome, 0)
        self.answered: list[float] = []  # sorted

    def add(self, outcome: Outcome, response_hours: float | None) -> None:
        self.counts[outcome] += 1
        if response_hours is not None:
            bisect.insort(self.answered, response_hours)

    def remove(self, outcome: Outcome, response_hours: float | None) -> None:
        self.counts[outcome] -= 1
        if response_hours is not None:
            del self.answered[bisect.bisect_left(self.answered, response_hours)]

    def figure(self) -> dict:
        """Counts, ratio (undefined with no judged cycle) and response-hour percentiles."""
        counts, answered = self.counts, self.answered
        judged = counts[Outcome.compliant] + counts[Outcome.breached]
        return {
            "compliant": counts[Outcome.compliant],
            "breached": counts[Outcome.breached],
            "withdrawn": counts[Outcome.withdrawn],
            "pending": counts[Outcome.pending],
            "ratio": counts[Outcome.compliant] / judged if judged else None,
            "p50_hours": percentile(answered, 0.50) if answered else None,
            "p95_hours": percentile(answered, 0.95) if answered else None,
        }


def response_figure(cycles: Iterable[Cycle], window: tuple[Micros | None, Micros | None]) -> dict:
    """Counts, ratio and response-hour percentiles of the cycles starting in `window`."""
    low, high = window
    tally = ResponseTally()
    answered = tally.answered
    for cycle in cycles:
        if (low is not None and cycle.start.at < low) or (high is not None and cycle.start.at > high):
            continue
        tally.counts[cycle.outcome] += 1
        if (value := cycle.response_hours) is not None:
            answered.append(value)
    answered.sort()
    return tally.figure()


def next_change(ledger: TicketLedger, cycles: Sequence[Cycle], now: Micros) -> Micros | None:
    """The first instant after `now` at which the ticket's judgement can change with no new event:
    an at-risk point or a deadline of a cycle still waiting, or a step that has not happened yet."""
    due = [step.at for step in ledger.steps if step.at > now][:1]
    for cycle in cycles:
        if cycle.outcome is Outcome.pending and cycle.closed_at() is None:
            due.extend(t for t in (cycle.warn_at, cycle.deadline) if t > now)
    return min(due) if due else None
