"""A deterministic synthetic exporter network and its event stream.

Exporters of both roles and categories, with outlets that heartbeat (and sometimes go
silent or are suspended), depots that report stock of their catalogue, and tickets whose
response times follow a configurable mix of on-time, late and never answered. The same
spec and seed always give the same events, in event-time order, generated lazily.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

MARKETS = ("KE", "NG", "ZA", "TH", "MY", "BR", "MX", "CL", "AE", "SA", "IL", "TR", "AU", "NZ", "ID", "PH",
           "VN", "EG", "MA", "CO")
_VIN_ALPHABET = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
_OFFSETS = (UTC,) * 6 + (timezone(timedelta(hours=3)), timezone(timedelta(hours=-3)),
                                   timezone(timedelta(hours=7)), timezone(timedelta(hours=5, minutes=30)))
_MINUTE = 60_000_000
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class ResponseMix:
    """Shares of ticket cycles answered on time, late, or never (the rest of 1.0 is on time)."""

    late: float = 0.04
    never: float = 0.01
    cancelled: float = 0.02
    reopened: float = 0.05


@dataclass(frozen=True)
class NetworkSpec:
    seed: int = 2026
    exporters: int = 4
    markets_per_exporter: int = 3
    outlets_per_market: int = 18  # 3 markets x 18 = 54: enough for Category I (more than 50)
    depots_per_market: int = 1
    catalogue_size: int = 40
    tickets_per_day_per_market: float = 12.0
    heartbeat_minutes: int = 120
    stock_report_hours: int = 6
    start: date = date(2026, 1, 1)
    days: int = 14
    mix: ResponseMix = field(default_factory=ResponseMix)
    grey_share: float = 0.002  # tickets on a VIN of a brand the exporter may not export
    outage_share: float = 0.01  # per outlet and day: silent for 25-60 hours
    suspension_share: float = 0.01  # per outlet and day: suspended for a few hours
    stockout_share: float = 0.05  # per depot report: a run of catalogue parts drops to zero


@dataclass
class _Exporter:
    exporter_id: str
    role: str
    category: str
    wmi: str
    markets: list[str]
    catalogue: list[str]


def _exporters(spec: NetworkSpec, rng: random.Random) -> list[_Exporter]:
    exporters = []
    for index in range(spec.exporters):
        distributor = index % 4 == 3 and index > 0
        markets = rng.sample(MARKETS, spec.markets_per_exporter)
        wmi = "L" + "".join(rng.choice(_VIN_ALPHABET) for _ in range(2))
        exporters.append(_Exporter(
            exporter_id=f"EXP-{index + 1:03d}",
            role="authorised_distributor" if distributor else "automaker",
            category="I" if index % 2 == 0 else "II",
            wmi=wmi,
            markets=markets,
            catalogue=[f"{wmi}-P{part:04d}" for part in range(spec.catalogue_size)],
        ))
    return exporters


def registrations(spec: NetworkSpec) -> list[dict[str, Any]]:
    """The exporters as ExporterRegistration documents (CONTRACT.md)."""
    exporters = _exporters(spec, random.Random(spec.seed))
    result = []
    for index, exporter in enumerate(exporters):
        principal = exporters[index - 1] if exporter.role == "authorised_distributor" else None
        year = spec.start.year
        result.append({
            "exporter_id": exporter.exporter_id,
            "name": f"Exporter {index + 1}",
            "role": exporter.role,
            "category": exporter.category,
            "authorised_by": [principal.exporter_id] if principal else [],
            "brands": [{"name": f"Brand {exporter.wmi}", "wmi": [exporter.wmi]}],
            "licence": {"number": f"EVX-{year}-{index + 1:04d}", "valid_from": f"{year}-01-01",
                        "valid_to": f"{year}-12-31"},
            "major_markets": exporter.markets[:2] if len(exporter.markets) > 2 else exporter.markets,
            "common_parts": {"*": exporter.catalogue[: spec.catalogue_size * 3 // 4],
                             exporter.markets[0]: exporter.catalogue[spec.catalogue_size * 3 // 4:]},
        })
    return result


def _stamp(instant: int, zone: timezone) -> str:
    return (_EPOCH + timedelta(microseconds=instant)).astimezone(zone).isoformat()


def events(spec: NetworkSpec) -> Iterator[dict[str, Any]]:
    """Every input event of the network, in event-time order, each with its "topic"."""
    rng = random.Random(spec.seed + 1)
    exporters = _exporters(spec, random.Random(spec.seed))
    start = int((datetime.combine(spec.start, datetime.min.time(), tzinfo=UTC) - _EPOCH).total_seconds()) * 1_000_000
    end = start + spec.days * _DAY
    queue: list[tuple[int, int, dict[str, Any]]] = []
    sequence = 0

    def put(at: int, event: dict[str, Any]) -> None:
        nonlocal sequence
        sequence += 1
        at -= at % 1_000_000  # systems report whole seconds
        heapq.heappush(queue, (at, sequence, event))

    counter = 0

    def event_id(prefix: str) -> str:
        nonlocal counter
        counter += 1
        return f"{prefix}-{counter:09d}"

    outlets = [(exporter, market, f"OUT-{exporter.exporter_id[4:]}-{market}-{n:02d}")
               for exporter in exporters for market in exporter.markets for n in range(spec.outlets_per_market)]
    silent_until: dict[str, int] = {}
    suspended_until: dict[str, int] = {}
    stock: dict[tuple[str, str], int] = {}

    for day in range(spec.days):
        day_start = start + day * _DAY
        # outlets: heartbeats, with occasional outages and suspensions decided once a day
        for exporter, market, outlet_id in outlets:
            if rng.random() < spec.outage_share:
                silent_until[outlet_id] = day_start + rng.randrange(25 * _HOUR, 60 * _HOUR)
            if rng.random() < spec.suspension_share:
                suspended_until[outlet_id] = day_start + rng.randrange(2 * _HOUR, 12 * _HOUR)
            phase = rng.randrange(spec.heartbeat_minutes) * _MINUTE
            for beat in range(day_start + phase, day_start + _DAY, spec.heartbeat_minutes * _MINUTE):
                if beat < silent_until.get(outlet_id, 0):
                    continue
                status = "suspended" if beat < suspended_until.get(outlet_id, 0) else "operational"
                put(beat, {"topic": "outlet-status", "event_id": event_id("o"), "exporter_id": exporter.exporter_id,
                           "outlet_id": outlet_id, "market": market, "status": status,
                           "capabilities": ["maintenance", "emergency_rescue_24h"] if int(outlet_id[-2:]) % 3
                           else ["maintenance"], "occurred_at": beat})
        # depots: reports of every catalogue part and a few others
        for exporter in exporters:
            for market in exporter.markets:
                for depot in range(spec.depots_per_market):
                    depot_id = f"DEP-{exporter.exporter_id[4:]}-{market}-{depot}"
                    for report in range(0, 24, spec.stock_report_hours):
                        at = day_start + report * _HOUR + rng.randrange(_HOUR)
                        outage = rng.random() < spec.stockout_share
                        lines = []
                        for n, part in enumerate(exporter.catalogue):
                            level = max(0, stock.get((depot_id, part), rng.randrange(0, 6)) + rng.randrange(-1, 2))
                            if outage and n % 4:
                                level = 0
                            stock[(depot_id, part)] = level
                            lines.append({"part_number": part, "quantity_on_hand": level})
                        lines.append({"part_number": f"ACC-{rng.randrange(100):03d}",
                                      "quantity_on_hand": rng.randrange(20)})
                        put(at, {"topic": "parts-stock", "event_id": event_id("s"),
                                 "exporter_id": exporter.exporter_id, "market": market, "depot_id": depot_id,
                                 "lines": lines, "occurred_at": at})
        # tickets: open today; their answers are queued for when they happen
        for exporter in exporters:
            for market in exporter.markets:
                count = int(spec.tickets_per_day_per_market) + (
                    rng.random() < spec.tickets_per_day_per_market % 1)
                for _ in range(count):
                    _ticket(spec, rng, put, event_id, exporter, market, day_start + rng.randrange(_DAY))
        # everything due before tomorrow, in event-time order
        horizon = min(day_start + _DAY, end)
        while queue and queue[0][0] < horizon:
            at, _, event = heapq.heappop(queue)
            event["occurred_at"] = _stamp(at, rng.choice(_OFFSETS))
            yield event
    while queue and queue[0][0] < end:
        at, _, event = heapq.heappop(queue)
        event["occurred_at"] = _stamp(at, UTC)
        yield event


def _ticket(spec: NetworkSpec, rng: random.Random, put: Any, event_id: Any, exporter: _Exporter, market: str,
            opened: int) -> None:
    ticket_id = f"T-{exporter.exporter_id[4:]}-{event_id('n')[2:]}"
    wmi = "WVW" if rng.random() < spec.grey_share else exporter.wmi
    vin = wmi + "".join(rng.choice(_VIN_ALPHABET) for _ in range(14))
    outlet_id = f"OUT-{exporter.exporter_id[4:]}-{market}-{rng.randrange(spec.outlets_per_market):02d}"

    def step(kind: str, at: int) -> None:
        put(at, {"topic": "service-tickets", "event_id": event_id("t"), "type": kind, "ticket_id": ticket_id,
                 "exporter_id": exporter.exporter_id, "market": market, "vin": vin, "outlet_id": outlet_id,
                 "occurred_at": at})

    step("opened", opened)
    start = opened
    for _cycle in range(3):
        draw = rng.random()
        mix = spec.mix
        if draw < mix.never:
            return
        if draw < mix.never + mix.cancelled:
            step("cancelled", start + rng.randrange(1 * _HOUR, 40 * _HOUR))
            return
        late = draw < mix.never + mix.cancelled + mix.late
        answered = start + (rng.randrange(48 * _HOUR + _MINUTE, 120 * _HOUR) if late
                            else int(rng.triangular(0.5, 47.5, 8) * _HOUR))
        step("responded", answered)
        resolved = answered + rng.randrange(1 * _HOUR, 72 * _HOUR)
        step("resolved", resolved)
        if rng.random() >= mix.reopened:
            return
        start = resolved + rng.randrange(1 * _DAY, 10 * _DAY)
        step("reopened", start)
