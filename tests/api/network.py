"""A small exporter network written into a history store through its write methods, for the API tests.

Two automakers, two distributors (one authorised by the first automaker, one by both) and one
unregistered exporter; five days of compliance snapshots in March 2026 and a handful of alerts
per exporter, some with several transitions. Everything is deterministic, so tests can state
what each caller must and must not see.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from monitor.contracts.policy import DEFAULT_POLICY
from monitor.delivery.webhooks import Webhook
from monitor.history.store import HistoryStore, Source, applied_policies
from monitor.obligations.policy import PolicyBook
from tests.builders import registration

A1, A2, D1, D2, X9 = "EXP-A1", "EXP-A2", "EXP-D1", "EXP-D2", "EXP-X9"
AUTHORISED_BY = {D1: [A1], D2: [A1, A2]}
MARKETS = {A1: ["KE", "NG"], A2: ["TH"], D1: ["KE"], D2: ["NG", "GH"], X9: ["KE"]}
MAJOR = {A1: ("KE", "NG"), A2: ("TH",), D1: ("KE",), D2: ("NG",)}
REGISTERED = (A1, A2, D1, D2)
ALL = (A1, A2, D1, D2, X9)
# what an automaker token naming the key sees (OBLIGATIONS.md, "Who answers for what")
SEES = {A1: {A1, D1, D2}, A2: {A2, D2}, D1: {D1}, D2: {D2}, X9: {X9}}
# each automaker's webhook: the store is opened with them, so every transition is enqueued for the ones that
# may see it (nothing is sent in the API tests: the URLs are the discard port)
WEBHOOKS = (Webhook(id="hook-a1", url="http://127.0.0.1:9/a1", secret="a1-secret-0123456789",  # noqa: S106
                    exporters=frozenset({A1})),
            Webhook(id="hook-a2", url="http://127.0.0.1:9/a2", secret="a2-secret-0123456789",  # noqa: S106
                    exporters=frozenset({A2})))
FIRST_DAY = date(2026, 3, 1)
DAYS = 5
POLICY = "2026.1"

_offsets = itertools.count()


def at(day: int, hour: int = 12, minute: int = 0) -> datetime:
    """An instant on day `day` (0: 1 March 2026) of the network's history, UTC."""
    return datetime(2026, 3, 1, hour, minute, tzinfo=UTC) + timedelta(days=day)


def stamp(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None


def source(topic: str) -> Source:
    return Source(topic, 0, next(_offsets))


def accountable(exporter_id: str) -> list[str]:
    return [exporter_id, *AUTHORISED_BY.get(exporter_id, [])]


def alert(exporter_id: str, obligation: str, subject: str, *, market: str | None, severity: str = "breach",
          status: str = "open", opened: datetime, resolved: datetime | None = None,
          raised: datetime | None = None) -> dict[str, Any]:
    """A ComplianceAlert message as a worker publishes it."""
    return {
        "alert_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{exporter_id}|{obligation}|{market}|{subject}|{severity}")),
        "exporter_id": exporter_id, "market": market, "obligation": obligation, "severity": severity,
        "status": status, "subject": subject, "opened_at": stamp(opened), "resolved_at": stamp(resolved),
        "raised_at": stamp(raised or opened), "clock": "wall_clock" if obligation == "response_48h" else "event_time",
        "renewal_relevant": severity == "breach", "policy_version": POLICY, "accountable": accountable(exporter_id),
        "evidence": {"exporter": exporter_id, "subject": subject, "note": "built for the API tests"},
    }


# an exporter's data freshness, by exporter in turn: (state, clock, how far its data is behind), or none
FRESHNESS: tuple[tuple[str, str, timedelta] | None, ...] = (
    ("current", "wall_clock", timedelta(seconds=30)), ("backlog", "event_time", timedelta(hours=3)),
    ("quiet", "wall_clock", timedelta(hours=2)), None)


def snapshot(exporter_id: str, market: str, as_of: datetime, *, seed: int,
             freshness: tuple[str, str, timedelta] | None = None) -> dict[str, Any]:
    """A ComplianceSnapshot whose figures vary with `seed` (day and exporter), with the exporter's
    data `freshness` (state, clock, lag) when given."""
    fresh = None if freshness is None else {
        "latest_event_at": stamp(as_of - freshness[2]), "lag_seconds": freshness[2].total_seconds(),
        "clock": freshness[1], "state": freshness[0]}
    compliant, breached = 20 + seed, seed % 3
    catalogue = 10 if exporter_id != X9 else None
    stocked = None if catalogue is None else 1 + seed % 4
    rate = None if catalogue is None or stocked is None else stocked / catalogue
    rescue = seed % 3
    major = market in MAJOR.get(exporter_id, ())
    return {
        "exporter_id": exporter_id, "market": market, "as_of": stamp(as_of), "policy_version": POLICY,
        "response_48h": {"compliant": compliant, "breached": breached, "withdrawn": 1, "pending": seed % 2,
                         "ratio": compliant / (compliant + breached), "p50_hours": 10.0 + seed,
                         "p95_hours": 40.0 + seed},
        "parts_inventory": {"catalogue": catalogue, "stocked": stocked, "rate": rate,
                            "compliant": None if rate is None else rate >= 0.2},
        "emergency_coverage": {"active_outlets": 3, "rescue_outlets": rescue, "covered": rescue > 0,
                               "major_market": major},
        "network_size": {"active_outlets": 40 + seed, "required": 51 if exporter_id != X9 else None,
                         "compliant": (40 + seed >= 51) if exporter_id != X9 else None},
        **({} if fresh is None else {"freshness": fresh}),
    }


@dataclass
class Network:
    """What was written: every alert's latest message by id, and the snapshots."""

    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)
    transitions: dict[str, int] = field(default_factory=dict)
    snapshots: list[dict[str, Any]] = field(default_factory=list)

    def open_alerts(self, exporters: set[str] | None = None) -> list[dict[str, Any]]:
        return [a for a in self.alerts.values()
                if a["status"] == "open" and (exporters is None or a["exporter_id"] in exporters)]


async def record(store: HistoryStore, network: Network, message: dict[str, Any]) -> None:
    """Store one alert transition and keep it in `network`."""
    assert await store.record_alert(message, source("aftersales.alerts"))
    network.alerts[message["alert_id"]] = message
    network.transitions[message["alert_id"]] = network.transitions.get(message["alert_id"], 0) + 1


async def fill(store: HistoryStore) -> Network:
    """Write the whole network into `store` and say what was written."""
    network = Network()
    await store.record_policies(applied_policies(PolicyBook(DEFAULT_POLICY).describe([POLICY])))
    for exporter_id in REGISTERED:
        role = "authorised_distributor" if exporter_id in AUTHORISED_BY else "automaker"
        await store.record_registration(registration(
            exporter_id, role=role, major=MAJOR[exporter_id], authorised_by=tuple(AUTHORISED_BY.get(exporter_id, ()))))
    for index, exporter_id in enumerate(ALL):
        for day in range(DAYS):
            for market in MARKETS[exporter_id]:
                doc = snapshot(exporter_id, market, at(day, 12, index), seed=day + index,
                               freshness=FRESHNESS[index % len(FRESHNESS)])
                await store.record_snapshot(doc, source("aftersales.compliance"))
                network.snapshots.append(doc)
        first, second = MARKETS[exporter_id][0], MARKETS[exporter_id][-1]
        # an open response breach, an open warning, a parts breach that resolved, a coverage breach
        # retracted by late data, and an exporter-wide authorisation breach
        await record(store, network, alert(exporter_id, "response_48h", f"T-{exporter_id}-1#1", market=first,
                                           opened=at(1, 9)))
        await record(store, network, alert(exporter_id, "response_48h", f"T-{exporter_id}-2#1", market=second,
                                           severity="warning", opened=at(3, 10)))
        parts = alert(exporter_id, "parts_inventory", first, market=first, opened=at(0, 8))
        await record(store, network, parts)
        await record(store, network, {**parts, "status": "resolved", "resolved_at": stamp(at(2, 8)),
                                      "raised_at": stamp(at(2, 8, 1))})
        coverage = alert(exporter_id, "emergency_coverage", second, market=second, opened=at(2, 14))
        await record(store, network, coverage)
        await record(store, network, {**coverage, "status": "retracted", "raised_at": stamp(at(2, 15))})
        await record(store, network, alert(exporter_id, "authorisation", "licence:none", market=None,
                                           opened=at(4, 6)))
    return network
