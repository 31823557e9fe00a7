"""Where events become figures and alerts.

The engine is fed instants in event-time order: every event occurring at one instant,
then the next instant. Before an instant it fires the timers that fell due (an outlet
going stale, a policy version taking effect); after it, it judges the state obligations
the instant touched and opens or resolves their alerts at that event time. Ticket
cycles are judged from each ticket's own events at the end, as of "now".

Exporters never affect each other: the state is kept per exporter (and tickets per
exporter and ticket), so the work splits by exporter, over processes in `evaluate` and
over partitions keyed by exporter in a stream worker.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from monitor.contracts.events import OutletStatusEvent, PartsStockReport, ServiceTicketEvent
from monitor.contracts.outputs import Obligation, Severity
from monitor.contracts.registry import ExporterRegistration, Role
from monitor.obligations.alerts import AlertRecord
from monitor.obligations.inventory import MarketStock
from monitor.obligations.outlets import ExporterOutlets, Outlet
from monitor.obligations.policy import PolicyBook, Thresholds
from monitor.obligations.quality import Finding
from monitor.obligations.response import Cycle, TicketLedger, TicketStep, cycle_alerts, response_figure, ticket_cycles
from monitor.obligations.timebase import Micros, licence_window, stamp

InputEvent = ServiceTicketEvent | PartsStockReport | OutletStatusEvent

_POLICY_CHANGE, _OUTLET_STALE = 0, 1  # at one instant, a new policy applies before staleness is judged
_PARTS, _COVERAGE, _NETWORK = 0, 1, 2  # what needs judging again


@dataclass(slots=True)
class ExporterBook:
    """Everything known about one exporter's network."""

    exporter_id: str
    registration: ExporterRegistration | None
    wmis: frozenset[str]
    markets: dict[str, MarketStock] = field(default_factory=dict)  # every market in scope
    outlets: ExporterOutlets = field(default_factory=ExporterOutlets)
    monitored_from: Micros | None = None  # its first event; nothing is judged before
    licence_span: tuple[Micros, Micros] | None = None  # [start, end) of its licence

    @property
    def major_markets(self) -> frozenset[str]:
        return frozenset(self.registration.major_markets) if self.registration else frozenset()

    @property
    def accountable(self) -> list[str]:
        """The exporter, and for a distributor the automakers that answer for it jointly."""
        if self.registration is None or self.registration.role is not Role.authorised_distributor:
            return [self.exporter_id]
        return [self.exporter_id, *self.registration.authorised_by]


@dataclass(slots=True)
class Judgement:
    """Everything the engine concluded as of one instant."""

    as_of: Micros
    figures: list[dict[str, Any]]
    exporters: list[dict[str, Any]]
    alerts: list[AlertRecord]
    findings: list[Finding]
    policy_versions: list[str]
    accountable: dict[str, list[str]]


def _event_id(event: InputEvent) -> str:
    return event.event_id


def _first(event: InputEvent, at: Micros) -> dict[str, str]:
    return {"event_id": event.event_id, "occurred_at": stamp(at)}


Cause = tuple[str, Micros, str]  # what changed a state: (kind, event time, event or outlet id)


def _describe(cause: Cause) -> dict[str, str]:
    kind, at, ref = cause
    name = {"event": "event_id", "stale": "outlet_id", "policy": "policy_version"}.get(kind, "ref")
    return {"kind": kind, "at": stamp(at), name: ref} if ref else {"kind": kind, "at": stamp(at)}


def _parts_evidence(stock: MarketStock, cause: Cause) -> dict[str, Any]:
    return {**stock.evidence(), "cause": _describe(cause)}


def _coverage_evidence(outlets: ExporterOutlets, market: str, cause: Cause) -> dict[str, Any]:
    return {**outlets.coverage_evidence(market), "cause": _describe(cause)}


class ComplianceEngine:
    """The obligation rules of OBLIGATIONS.md over one registry and one policy."""

    def __init__(self, registry: Mapping[str, ExporterRegistration], policy: PolicyBook,
                 owns: Callable[[str], bool] | None = None, keep_tickets: bool = True) -> None:
        """`owns` says which exporters this engine answers for, when the work is split by
        exporter (several processes or stream workers); the registry stays whole, since a
        distributor's brands come from the automakers that authorised it.

        `keep_tickets=False`: ticket events still count for authorisation and for the
        markets in scope, but their ledgers are kept by the caller (a live worker judges
        each ticket as its events arrive, whatever their order)."""
        self.registry = registry
        self.keep_tickets = keep_tickets
        self.policy = policy
        self.books: dict[str, ExporterBook] = {}
        self.tickets: dict[tuple[str, str], TicketLedger] = {}
        self.now: Micros | None = None
        self._rules = policy.earliest()  # until the first instant fed; later versions arrive as timers
        self._first_event: Micros | None = None
        self._state_alerts: list[AlertRecord] = []
        self._open: dict[tuple[str, Obligation, str | None, str], AlertRecord] = {}
        self._facts: set[tuple[str, str | None, str]] = set()
        self._dirty: dict[tuple[str, str | None, int], Cause] = {}  # (exporter, market, what) -> latest cause
        self._timers: list[tuple[Micros, int, int, str, str]] = []
        self._timer_seq = 0
        self.judgements = 0  # how many times state obligations were judged: a change marker for live workers
        for change in policy.changes():
            self._schedule(change.effective_from, _POLICY_CHANGE, "", change.version)
        for exporter_id in registry:
            if owns is None or owns(exporter_id):
                self._book(exporter_id)

    # ---- feeding -------------------------------------------------------------------------

    def apply_instant(self, at: Micros, events: Iterable[InputEvent]) -> None:
        """Apply every event that occurred at instant `at`, then judge what they touched.

        The events of one instant are applied in event_id order whatever order they came
        in, so even the evidence an alert records does not depend on arrival order.
        """
        if self.now is not None and at < self.now:
            raise ValueError(f"instants must come in event-time order: {at} is before {self.now}")
        if self._timers and self._timers[0][0] <= at:
            self.advance(at)
        self.now = at
        if self._first_event is None:
            self._first_event = at
        rules = self._rules
        books = self.books
        batch = events if isinstance(events, list) and len(events) == 1 else sorted(events, key=_event_id)
        for event in batch:
            book = books.get(event.exporter_id) or self._book(event.exporter_id)
            if book.monitored_from is None:
                self._start_monitoring(book, at)
            self._check_authorisation(book, event, at, rules)
            if event.market not in book.markets:
                self._enter_market(book, event.market, at, event.event_id)
            if isinstance(event, OutletStatusEvent):
                self._outlet(book, event, at, rules)
            elif isinstance(event, ServiceTicketEvent):
                if self.keep_tickets:
                    self._ticket(event, at)
            else:
                self._stock(book, event, at)
        if self._dirty:
            self._settle(at)

    def advance(self, until: Micros) -> None:
        """Fire the timers that fall due before instant `until`, and policy changes at it.

        Each earlier instant with timers is judged on its own; what changes at `until`
        itself is judged with the events of `until` (or by `judge`).
        """
        timers = self._timers
        while timers and self._due(until):
            effective = timers[0][0]
            while timers and timers[0][0] == effective and self._due(until):
                _, kind, _, key, payload = heapq.heappop(timers)
                if kind == _POLICY_CHANGE:
                    self._policy_change(effective, payload)
                else:
                    self._outlet_stale(effective, key, payload)
            if effective < until and self._dirty:
                self._settle(effective)
        self.now = until if self.now is None else max(self.now, until)

    def _due(self, until: Micros) -> bool:
        # a stale outlet is still active at exactly its expiry; a policy applies from its first instant
        effective, kind = self._timers[0][0], self._timers[0][1]
        return effective < until or (effective == until and kind == _POLICY_CHANGE)

    # ---- the parts of an instant -------------------------------------------------------------

    def _book(self, exporter_id: str) -> ExporterBook:
        book = self.books.get(exporter_id)
        if book is None:
            registration = self.registry.get(exporter_id)
            wmis: frozenset[str] = frozenset()
            if registration is not None:
                wmis = registration.wmis()
                if registration.role is Role.authorised_distributor:
                    for automaker in registration.authorised_by:
                        if (principal := self.registry.get(automaker)) is not None:
                            wmis |= principal.wmis()
            book = self.books[exporter_id] = ExporterBook(exporter_id, registration, wmis)
            if registration is not None and registration.licence is not None:
                book.licence_span = licence_window(registration.licence.valid_from, registration.licence.valid_to)
            for market in sorted(book.major_markets):
                self._add_market(book, market)
        return book

    def _add_market(self, book: ExporterBook, market: str) -> MarketStock:
        registration = book.registration
        catalogue = registration.catalogue(market) if registration is not None else None
        stock = book.markets[market] = MarketStock(catalogue, self._rules.min_quantity, self._rules.min_rate)
        return stock

    def _start_monitoring(self, book: ExporterBook, at: Micros) -> None:
        if book.monitored_from is None:
            book.monitored_from = at
            cause = ("monitoring_start", at, "")
            for market in book.markets:
                self._touch(book.exporter_id, market, cause, parts=True, coverage=True)
            self._dirty[(book.exporter_id, None, _NETWORK)] = cause

    def _enter_market(self, book: ExporterBook, market: str, at: Micros, event_id: str) -> None:
        if market not in book.markets:
            self._add_market(book, market)
            self._touch(book.exporter_id, market, ("market_first_seen", at, event_id), parts=True, coverage=True)

    def _ticket(self, event: ServiceTicketEvent, at: Micros) -> None:
        key = (event.exporter_id, event.ticket_id)
        ledger = self.tickets.get(key)
        if ledger is None:
            ledger = self.tickets[key] = TicketLedger(event.ticket_id)
        ledger.add(TicketStep.make(at, event.event_id, event.type, event.exporter_id, event.market, event.vin))

    def _stock(self, book: ExporterBook, event: PartsStockReport, at: Micros) -> None:
        stock = book.markets[event.market]
        stocked = stock.stocked
        lines = ((line.part_number, line.quantity_on_hand) for line in event.lines)
        if stock.report(at, event.event_id, event.depot_id, lines) and stock.stocked != stocked:
            self._dirty[(book.exporter_id, event.market, _PARTS)] = ("event", at, event.event_id)

    def _outlet(self, book: ExporterBook, event: OutletStatusEvent, at: Micros, rules: Thresholds) -> None:
        outlet, touched = book.outlets.status(at, event.event_id, event.outlet_id, event.market,
                                              event.status, event.capabilities, rules.stale_after)
        if outlet is None:
            return
        if outlet.timer_at is None:
            self._arm(book.exporter_id, outlet)
        if touched:
            cause = ("event", at, event.event_id)
            for market in touched:
                self._dirty[(book.exporter_id, market, _COVERAGE)] = cause
            self._dirty[(book.exporter_id, None, _NETWORK)] = cause

    def _arm(self, exporter_id: str, outlet: Outlet) -> None:
        # one pending timer per outlet: heartbeats move `expires_at`, the timer re-arms when it falls due
        outlet.timer_at = outlet.expires_at
        self._schedule(outlet.expires_at, _OUTLET_STALE, exporter_id, outlet.outlet_id)

    def _outlet_stale(self, at: Micros, exporter_id: str, outlet_id: str) -> None:
        book = self.books[exporter_id]
        market, rearm_at = book.outlets.expire(outlet_id, at)
        if rearm_at is not None:
            self._arm(exporter_id, book.outlets.outlets[outlet_id])
        if market is not None:
            cause = ("stale", at, outlet_id)
            self._dirty[(exporter_id, market, _COVERAGE)] = cause
            self._dirty[(exporter_id, None, _NETWORK)] = cause

    def _policy_change(self, at: Micros, version: str) -> None:
        rules = self._rules = self.policy.at(at)
        cause = ("policy", at, version)
        for book in self.books.values():
            for market, stock in book.markets.items():
                stock.rescore(rules.min_quantity, rules.min_rate)
                self._touch(book.exporter_id, market, cause, parts=True, coverage=True)
            book.outlets.restale(at, rules.stale_after)
            for outlet in book.outlets.outlets.values():
                if outlet.counted and (outlet.timer_at is None or outlet.timer_at > outlet.expires_at):
                    self._arm(book.exporter_id, outlet)
            self._dirty[(book.exporter_id, None, _NETWORK)] = cause

    def _schedule(self, at: Micros, kind: int, key: str, payload: str) -> None:
        self._timer_seq += 1
        heapq.heappush(self._timers, (at, kind, self._timer_seq, key, payload))

    # ---- judging state obligations at an instant ---------------------------------------------

    def _touch(self, exporter_id: str, market: str, cause: Cause, *, parts: bool, coverage: bool) -> None:
        if parts:
            self._dirty[(exporter_id, market, _PARTS)] = cause
        if coverage:
            self._dirty[(exporter_id, market, _COVERAGE)] = cause

    def _settle(self, at: Micros) -> None:
        self.judgements += 1
        rules = self._rules
        for (exporter_id, market, what), cause in self._dirty.items():
            book = self.books[exporter_id]
            if book.monitored_from is None or book.registration is None:
                continue
            if what == _NETWORK:
                self._judge_network(book, at, rules, cause)
            elif market is None:
                continue
            elif what == _PARTS:
                stock = book.markets[market]
                if stock.catalogue:
                    self._observe(book, Obligation.parts_inventory, market, market, at, rules,
                                  not stock.compliant, partial(_parts_evidence, stock, cause))
            elif market in book.major_markets:
                self._observe(book, Obligation.emergency_coverage, market, market, at, rules,
                              book.outlets.rescue[market] == 0,
                              partial(_coverage_evidence, book.outlets, market, cause))
        self._dirty.clear()

    def _judge_network(self, book: ExporterBook, at: Micros, rules: Thresholds, cause: Cause) -> None:
        category = book.registration.category if book.registration else None
        required = rules.min_outlets.get(category) if category else None
        if required is None:
            return
        self._observe(book, Obligation.network_size, None, "network", at, rules,
                      book.outlets.active_total < required,
                      lambda: {"active_outlets": book.outlets.active_total, "required": required,
                               "category": category, "cause": _describe(cause)})

    def _observe(self, book: ExporterBook, obligation: Obligation, market: str | None, subject: str,
                 at: Micros, rules: Thresholds, breached: bool, evidence: Callable[[], dict[str, Any]]) -> None:
        key = (book.exporter_id, obligation, market, subject)
        current = self._open.get(key)
        if breached and current is None:
            alert = AlertRecord(book.exporter_id, market, obligation, Severity.breach, subject, at,
                                rules.version, evidence())
            self._open[key] = alert
            self._state_alerts.append(alert)
        elif not breached and current is not None:
            current.resolved_at = at
            current.evidence["resolved_by"] = evidence()["cause"]
            del self._open[key]

    # ---- authorisation ---------------------------------------------------------------------

    def _check_authorisation(self, book: ExporterBook, event: InputEvent, at: Micros, rules: Thresholds) -> None:
        registration = book.registration
        if registration is None:
            self._fact(book, None, "registration", at, rules,
                       lambda: {"reason": "the exporter is not registered", "first_event": _first(event, at)})
            return
        span = book.licence_span
        if span is None:
            self._fact(book, None, "licence:none", at, rules,
                       lambda: {"reason": "the registration has no licence", "first_event": _first(event, at)})
        elif not span[0] <= at < span[1]:
            number = registration.licence.number if registration.licence else ""
            side = "not_yet_valid" if at < span[0] else "expired"
            self._fact(book, None, f"licence:{number}:{side}", at, rules, lambda: {
                "reason": f"licence {number} is not valid at the event's time ({side})",
                "valid_from": stamp(span[0]), "valid_until": stamp(span[1]), "first_event": _first(event, at)})
        if isinstance(event, ServiceTicketEvent) and event.vin[:3] not in book.wmis:
            self._fact(book, event.market, f"{event.ticket_id}/{event.vin}", at, rules, lambda: {
                "reason": "the VIN's manufacturer code is not among the exporter's authorised brands",
                "ticket_id": event.ticket_id, "vin": event.vin, "wmi": event.vin[:3],
                "authorised_wmis": sorted(book.wmis), "first_event": _first(event, at)})

    def _fact(self, book: ExporterBook, market: str | None, subject: str, at: Micros, rules: Thresholds,
              evidence: Callable[[], dict[str, Any]]) -> None:
        key = (book.exporter_id, market, subject)
        if key not in self._facts:
            self._facts.add(key)
            self._state_alerts.append(AlertRecord(book.exporter_id, market, Obligation.authorisation,
                                                  Severity.breach, subject, at, rules.version, evidence()))

    # ---- conclusions ------------------------------------------------------------------------

    def market_figure(self, exporter_id: str, market: str, response: dict[str, Any]) -> dict[str, Any]:
        """One exporter's figures in one market, given its response figure (which the caller
        tallies: over a window in a batch, over every cycle so far in a live worker)."""
        book = self.books[exporter_id]
        return {
            "exporter_id": exporter_id,
            "market": market,
            "response_48h": response,
            "parts_inventory": book.markets[market].figure(),
            "emergency_coverage": {
                "active_outlets": book.outlets.active[market],
                "rescue_outlets": book.outlets.rescue[market],
                "covered": book.outlets.rescue[market] > 0,
                "major_market": market in book.major_markets,
            },
        }

    def exporter_figure(self, exporter_id: str, rules: Thresholds) -> dict[str, Any]:
        """The exporter-wide figures (network size) under `rules`."""
        book = self.books[exporter_id]
        required = rules.min_outlets.get(book.registration.category) if book.registration else None
        active = book.outlets.active_total
        return {"exporter_id": exporter_id, "network_size": {
            "active_outlets": active, "required": required,
            "compliant": None if required is None else active >= required}}

    def state_alerts(self) -> list[AlertRecord]:
        """Every alert of the state obligations and authorisation opened so far (episodes
        of parts, coverage and network size, authorisation facts), resolved or not."""
        return self._state_alerts

    def forget_resolved(self, before: Micros) -> list[AlertRecord]:
        """Drop the state alerts resolved at or before `before` and return them. A live worker
        calls this for what lies before its oldest checkpoint, which nothing can change any more;
        a batch judgement keeps every alert."""
        kept: list[AlertRecord] = []
        gone: list[AlertRecord] = []
        for alert in self._state_alerts:
            (gone if alert.resolved_at is not None and alert.resolved_at <= before else kept).append(alert)
        self._state_alerts = kept
        return gone

    def judge(self, as_of: Micros, window: tuple[Micros | None, Micros | None] = (None, None)) -> Judgement:
        """Every figure and alert as of `as_of` (after the last instant fed)."""
        self.advance(as_of)
        if self._dirty:
            self._settle(as_of)
        rules = self.policy.at(as_of)
        findings: list[Finding] = []
        cycles_by_market: dict[tuple[str, str], list[Cycle]] = defaultdict(list)
        alerts = [a for a in self._state_alerts if a.opened_at <= as_of]
        versions = {a.policy_version for a in alerts}
        for ledger in self.tickets.values():
            cycles, problems = ticket_cycles(ledger, self.policy, as_of)
            findings.extend(problems)
            for cycle in cycles:
                cycles_by_market[(cycle.exporter_id, cycle.market)].append(cycle)
                versions.add(cycle.policy_version)
                alerts.extend(cycle_alerts(cycle, as_of))

        figures, exporters = [], []
        for exporter_id in sorted(self.books):
            book = self.books[exporter_id]
            if book.monitored_from is None:
                findings.append(Finding("silent_exporter", exporter_id, exporter_id,
                                        "registered, but no event from it; nothing judged over time"))
            for market in sorted(book.markets):
                stock = book.markets[market]
                if stock.catalogue is not None and not stock.catalogue:
                    findings.append(Finding("empty_catalogue", exporter_id, market,
                                            "no common-malfunction parts registered for this market"))
                response = response_figure(cycles_by_market.get((exporter_id, market), ()), window)
                figures.append(self.market_figure(exporter_id, market, response))
            exporters.append(self.exporter_figure(exporter_id, rules))

        if self._first_event is not None:
            versions.update(self.policy.in_force_between(self._first_event, as_of))
        alerts.sort(key=lambda a: (a.opened_at, a.exporter_id, a.obligation.value, a.subject, a.severity.value))
        return Judgement(
            as_of=as_of,
            figures=figures,
            exporters=exporters,
            alerts=alerts,
            findings=findings,
            policy_versions=sorted(versions),
            accountable={exporter_id: book.accountable for exporter_id, book in self.books.items()},
        )
