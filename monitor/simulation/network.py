"""A synthetic exporter network and the event stream it produces, the same for the same spec.

Automakers and the distributors they authorise, each with outlets that send status
heartbeats (and now and then are suspended, go silent for more than a day, or close
and are replaced), depots that report the stock of their catalogue (with the odd
stock-out), and maintenance tickets whose responses follow a given mix of on time,
late and never answered.

Only `random.Random` streams seeded from the spec drive it: no wall clock, no global
state. Each concern (layout, outlets, stock, tickets) draws from its own stream, so
changing the ticket rate leaves the outlets' behaviour as it was. Events are made one
day at a time; what a day sets in motion for later (a response, a reopening) waits in
a heap, so memory stays flat however many days are asked for.
"""

from __future__ import annotations

import bisect
import heapq
import math
import operator
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

# Markets Chinese EV exports reach, with the standard-time offset local systems write.
MARKET_OFFSETS: dict[str, str] = {
    "KE": "+03:00", "NG": "+01:00", "ZA": "+02:00", "EG": "+02:00", "MA": "+01:00", "ET": "+03:00",
    "TH": "+07:00", "MY": "+08:00", "ID": "+07:00", "PH": "+08:00", "VN": "+07:00", "SG": "+08:00",
    "NP": "+05:45", "LK": "+05:30", "BD": "+06:00", "PK": "+05:00", "KZ": "+05:00", "UZ": "+05:00",
    "AE": "+04:00", "SA": "+03:00", "QA": "+03:00", "JO": "+03:00", "IL": "+02:00", "TR": "+03:00",
    "BR": "-03:00", "MX": "-06:00", "CL": "-04:00", "CO": "-05:00", "PE": "-05:00", "UY": "-03:00",
    "AU": "+10:00", "NZ": "+12:00", "GB": "+00:00", "BE": "+01:00", "HU": "+01:00", "NO": "+01:00",
}
MARKETS: tuple[str, ...] = tuple(MARKET_OFFSETS)

TOPIC_TICKETS = "service-tickets"
TOPIC_STOCK = "parts-stock"
TOPIC_OUTLETS = "outlet-status"

MAINTENANCE = "maintenance"
RESCUE = "emergency_rescue_24h"

_VIN_ALPHABET = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"  # ISO 3779: no I, O, Q
_MODEL_YEARS = "ABCDEFGHJKLMNPRSTVWXY123456789"  # VIN position 10, 2010 = A, a 30-year cycle
_VIN_VALUES = {**{str(d): d for d in range(10)}, **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
               **dict(zip("JKLMN", range(1, 6), strict=True)), "P": 7, "R": 9,
               **dict(zip("STUVWXYZ", range(2, 10), strict=True))}
_VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
_FOREIGN_WMIS = ("WVW", "JTD", "KMH", "WBA", "VF1", "5YJ", "SAL", "TMB")  # brands no exporter here owns
_PART_FAMILIES = ("BMS", "MCU", "OBC", "DCDC", "HVB", "TMS", "EPS", "IBS", "ADAS", "BRK", "SUS", "HVAC",
                  "CHG", "INV", "LMP", "WPR", "SEN", "ECU", "HVJ", "CAM")
_NAME_PARTS = (("Hua", "Zhong", "Xin", "Tian", "Jiang", "Long", "Rui", "Feng", "Yuan", "Kai", "Hong", "Ming"),
               ("xing", "tai", "neng", "chi", "yun", "da", "bo", "sheng", "lan", "hai", "tong", "ke"))
# When tickets are opened, by local hour: few at night, most in working hours.
_OPENING_WEIGHTS = (1, 1, 1, 1, 1, 2, 4, 7, 10, 11, 11, 10, 9, 10, 10, 10, 9, 8, 6, 5, 4, 3, 2, 1)
_OPENING_CUMULATIVE = tuple(sum(_OPENING_WEIGHTS[: hour + 1]) for hour in range(24))

_MINUTE = 60
_HOUR = 3600
_DAY = 86_400
_DEADLINE = 48 * _HOUR


@dataclass(frozen=True)
class ResponseMix:
    """How ticket cycles are answered: shares on time (within 48 h), late, and never.

    The shares are relative weights; they need not add up to 1.
    """

    on_time: float = 0.96
    late: float = 0.03
    never: float = 0.01

    def __post_init__(self) -> None:
        shares = (self.on_time, self.late, self.never)
        if min(shares) < 0 or sum(shares) <= 0:
            raise ValueError(f"response mix shares must be non-negative and not all zero: {shares}")


@dataclass(frozen=True)
class NetworkSpec:
    """Everything that shapes a synthetic network; the same spec always gives the same events.

    Exporter 3, 6, 9, … is an authorised distributor of the automakers before it; the
    others are automakers, Category I and II in turn. Each exporter's last market is not
    one of its major markets (when it has more than one).
    """

    seed: int = 2026
    exporters: int = 5
    markets_per_exporter: int = 3
    outlets_per_market: int = 18  # 3 markets x 18 = 54 outlets: above Category I's 50
    depots_per_market: int = 1
    catalogue_size: int = 40  # common-malfunction parts for every market; some markets add a few
    tickets_per_day_per_market: float = 25.0
    start: date = date(2026, 1, 1)
    days: int = 365
    response_mix: ResponseMix = field(default_factory=ResponseMix)
    grey_market_share: float = 0.001  # tickets on a VIN of a brand the exporter may not export
    cancelled_share: float = 0.03  # cycles the customer withdraws before any answer
    reopened_share: float = 0.05  # answered cycles reopened after resolution
    heartbeat_minutes: int = 240  # an outlet's status interval; must stay under a day
    stock_report_hours: int = 6  # a depot's report interval
    outage_share: float = 0.002  # per outlet and day: goes silent for 25 to 72 hours
    suspension_share: float = 0.003  # per outlet and day: suspended for 6 to 72 hours
    closure_share: float = 0.0002  # per outlet and day: closes; a new outlet replaces it weeks later
    stockout_share: float = 0.01  # per depot and day: most parts run out for 1 to 5 days
    utc_share: float = 0.75  # systems writing "Z"; the others write their market's local offset

    def __post_init__(self) -> None:
        counts = {"exporters": self.exporters, "markets_per_exporter": self.markets_per_exporter,
                  "outlets_per_market": self.outlets_per_market, "catalogue_size": self.catalogue_size,
                  "days": self.days}
        for name, value in counts.items():
            if value < 1:
                raise ValueError(f"{name} must be at least 1 (got {value})")
        if self.depots_per_market < 0 or self.tickets_per_day_per_market < 0:
            raise ValueError("depots_per_market and tickets_per_day_per_market cannot be negative")
        if self.markets_per_exporter > len(MARKETS):
            raise ValueError(f"markets_per_exporter: at most {len(MARKETS)} markets are known")
        if not 1 <= self.heartbeat_minutes < 24 * 60:
            raise ValueError("heartbeat_minutes must be between 1 and 1439: "
                             "a day without status makes an outlet unknown")
        if not 1 <= self.stock_report_hours <= 24:
            raise ValueError("stock_report_hours must be between 1 and 24")
        shares = ("grey_market_share", "cancelled_share", "reopened_share", "outage_share",
                  "suspension_share", "closure_share", "stockout_share", "utc_share")
        for name in shares:
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be between 0 and 1 (got {getattr(self, name)})")
        if self.outage_share + self.suspension_share + self.closure_share > 1:
            raise ValueError("outage_share + suspension_share + closure_share cannot exceed 1")

    def expected_events_per_day(self) -> float:
        """An estimate of the events one day of this network produces (within a few per cent)."""
        mix = self.response_mix
        weight = mix.on_time + mix.late + mix.never
        answered = (1 - self.cancelled_share) * (mix.on_time + mix.late) / weight
        never = (1 - self.cancelled_share) * mix.never / weight
        # after its start, a cycle brings a cancellation, an answer and a resolution, or (never
        # answered) sometimes a late cancellation
        per_cycle = self.cancelled_share + answered * (2 - _BY_RESOLUTION) + never * _GIVE_UP
        reopen = answered * self.reopened_share
        cycles = 1 + reopen + reopen**2
        per_ticket = 1 + per_cycle * cycles + (cycles - 1)
        per_market = (self.outlets_per_market * 24 * 60 / self.heartbeat_minutes
                      + self.depots_per_market * 24 / self.stock_report_hours
                      + self.tickets_per_day_per_market * per_ticket)
        return self.exporters * self.markets_per_exporter * per_market

    def first_instant(self) -> datetime:
        """00:00:00Z of the first simulated day."""
        return datetime.combine(self.start, time(0), tzinfo=UTC)


_BY_RESOLUTION = 0.08  # answered cycles whose answer is the resolution itself, with no "responded"
_GIVE_UP = 0.5  # never-answered cycles the customer cancels days after the deadline
_TYPICAL_RESPONSE = math.log(5 * _HOUR)  # median on-time response: five hours
_CARRIED = 0.7  # share of catalogue parts a depot normally carries


# ---- the network's layout -------------------------------------------------------------------------


@dataclass
class _Brand:
    name: str
    wmis: list[str]
    models: list[str]  # VIN positions 4-8
    plants: str  # VIN position 11


@dataclass
class _Exporter:
    number: int
    exporter_id: str
    name: str
    role: str
    category: str
    authorised_by: list[str]
    brands: list[_Brand]
    markets: list[str]
    major_markets: list[str]
    common_parts: dict[str, list[str]]
    outside_parts: list[str]  # parts depots stock that are not common-malfunction parts
    foreign_wmis: list[str]  # WMIs of brands this exporter may not export

    def catalogue(self, market: str) -> list[str]:
        return self.common_parts["*"] + self.common_parts.get(market, [])


@dataclass
class _Outlet:
    exporter: _Exporter
    market: str
    slot: int
    rescue: bool
    zone: str  # "Z" or the market's offset, as this outlet's system writes times
    phase: int  # its heartbeats fall at phase + k * interval
    generation: int = 0  # how many times the slot was re-opened by a new outlet
    silent: tuple[int, int] = (0, 0)
    suspended: tuple[int, int] = (0, 0)
    reopens_at: int = 0  # when closed: when a new outlet opens in its place

    @property
    def outlet_id(self) -> str:
        suffix = f"-R{self.generation}" if self.generation else ""
        return f"OUT-{self.exporter.number:03d}-{self.market}-{self.slot:02d}{suffix}"


@dataclass
class _Depot:
    exporter: _Exporter
    market: str
    depot_id: str
    zone: str
    phase: int
    parts: list[str]  # what it reports: its market's catalogue, then parts outside it
    catalogue_size: int
    levels: dict[str, int]
    carried: set[str]
    stockout_until: int = 0


@dataclass
class _Network:
    exporters: list[_Exporter]
    outlets: list[_Outlet]
    depots: list[_Depot]


def _stream(spec: NetworkSpec, concern: str) -> random.Random:
    # a string seed is hashed with SHA-512: the same on every run and platform
    return random.Random(f"{spec.seed}/{concern}")


def _company_name(rng: random.Random, taken: set[str]) -> str:
    while True:
        name = rng.choice(_NAME_PARTS[0]) + rng.choice(_NAME_PARTS[1])
        if name not in taken:
            taken.add(name)
            return name


def _layout(spec: NetworkSpec) -> _Network:
    rng = _stream(spec, "layout")
    names: set[str] = set()
    wmis_taken: set[str] = set()

    def new_wmi() -> str:
        while True:
            wmi = "L" + "".join(rng.choice(_VIN_ALPHABET) for _ in range(2))
            if wmi not in wmis_taken:
                wmis_taken.add(wmi)
                return wmi

    exporters: list[_Exporter] = []
    for index in range(spec.exporters):
        number = index + 1
        automakers = [e for e in exporters if e.role == "automaker"]
        distributor = index % 3 == 2 and bool(automakers)
        company = _company_name(rng, names)
        if distributor:
            principals = automakers[-2:] if len(automakers) > 1 and rng.random() < 0.5 else automakers[-1:]
            brands = [brand for principal in principals for brand in principal.brands]
            name = f"{company} Auto Trading Co., Ltd."
            category = "II"
        else:
            principals = []
            brands = []
            for _ in range(1 + (rng.random() < 0.4)):
                brand_name = _company_name(rng, names)
                brands.append(_Brand(
                    name=brand_name,
                    wmis=[new_wmi() for _ in range(1 + (rng.random() < 0.25))],
                    models=["".join(rng.choice(_VIN_ALPHABET) for _ in range(5))
                            for _ in range(rng.randint(2, 4))],
                    plants="".join(rng.sample(_VIN_ALPHABET[:23], rng.randint(1, 3))),
                ))
            name = f"{company} New Energy Automobile Co., Ltd."
            category = "I" if len(automakers) % 2 == 0 else "II"
        markets = rng.sample(MARKETS, spec.markets_per_exporter)
        prefix = brands[0].wmis[0]
        families = rng.sample(_PART_FAMILIES, min(len(_PART_FAMILIES), 6))
        catalogue = [f"{prefix}-{families[n % len(families)]}-{100 + n:03d}"
                     for n in range(spec.catalogue_size)]
        common_parts = {"*": catalogue}
        extra = max(1, spec.catalogue_size // 10)
        for market in markets[:2] if len(markets) > 1 else markets:
            if rng.random() < 0.6:  # a market that adds parts of its own (climate, right-hand drive, …)
                common_parts[market] = [f"{prefix}-{market}-{n + 1:03d}" for n in range(extra)]
        exporters.append(_Exporter(
            number=number,
            exporter_id=f"EXP-{number:03d}",
            name=name,
            role="authorised_distributor" if distributor else "automaker",
            category=category,
            authorised_by=[p.exporter_id for p in principals],
            brands=brands,
            markets=markets,
            major_markets=markets[:-1] if len(markets) > 1 else markets,
            common_parts=common_parts,
            outside_parts=[f"{prefix}-ACC-{n:03d}" for n in range(max(1, spec.catalogue_size // 4))],
            foreign_wmis=[],
        ))
    for exporter in exporters:
        own = {w for brand in exporter.brands for w in brand.wmis}
        exporter.foreign_wmis = sorted(wmis_taken - own) + list(_FOREIGN_WMIS)

    interval = spec.heartbeat_minutes * _MINUTE
    origin = int(spec.first_instant().timestamp())
    outlets, depots = [], []
    for exporter in exporters:
        for market in exporter.markets:
            # a few markets lean on a single rescue outlet, so one outage leaves them uncovered
            rescuers = 1 if rng.random() < 0.3 else max(1, spec.outlets_per_market // rng.randint(3, 5))
            rescue_slots = set(rng.sample(range(spec.outlets_per_market),
                                          min(rescuers, spec.outlets_per_market)))
            for slot in range(spec.outlets_per_market):
                outlets.append(_Outlet(
                    exporter=exporter, market=market, slot=slot + 1, rescue=slot in rescue_slots,
                    zone="Z" if rng.random() < spec.utc_share else MARKET_OFFSETS[market],
                    phase=origin + rng.randrange(interval),
                ))
            for depot in range(spec.depots_per_market):
                parts = exporter.catalogue(market) + exporter.outside_parts
                carried = {part for part in parts if rng.random() < _CARRIED}
                depots.append(_Depot(
                    exporter=exporter, market=market,
                    depot_id=f"DEP-{exporter.number:03d}-{market}-{depot + 1}",
                    zone="Z" if rng.random() < spec.utc_share else MARKET_OFFSETS[market],
                    phase=rng.randrange(spec.stock_report_hours * _HOUR),
                    parts=parts, catalogue_size=len(exporter.catalogue(market)),
                    levels={part: rng.randint(1, 8) if part in carried else 0 for part in parts},
                    carried=carried,
                ))
    return _Network(exporters, outlets, depots)


# ---- registrations ----------------------------------------------------------------------------------


def registrations(spec: NetworkSpec) -> list[dict[str, Any]]:
    """The network's exporters as ExporterRegistration documents (CONTRACT.md), plain JSON data.

    Licences are valid for the calendar year of `spec.start`. A distributor lists the
    brands of the automakers that authorised it, and names them in `authorised_by`.
    """
    year = spec.start.year
    return [
        {
            "exporter_id": exporter.exporter_id,
            "name": exporter.name,
            "role": exporter.role,
            "category": exporter.category,
            "authorised_by": list(exporter.authorised_by),
            "brands": [{"name": brand.name, "wmi": list(brand.wmis)} for brand in exporter.brands],
            "licence": {"number": f"EVX-{year}-{exporter.number:05d}", "valid_from": f"{year}-01-01",
                        "valid_to": f"{year}-12-31"},
            "major_markets": list(exporter.major_markets),
            "common_parts": {key: list(parts) for key, parts in exporter.common_parts.items()},
        }
        for exporter in _layout(spec).exporters
    ]


# ---- timestamps and VINs ---------------------------------------------------------------------------

def _offset_seconds(offset: str) -> int:
    sign = -1 if offset[0] == "-" else 1
    return sign * (int(offset[1:3]) * _HOUR + int(offset[4:6]) * _MINUTE)


_OFFSET_SECONDS = {"Z": 0, **{offset: _offset_seconds(offset) for offset in MARKET_OFFSETS.values()}}
_EPOCH_DAY = date(1970, 1, 1)
_CLOCK_MINUTES = tuple(f"{minute // 60:02d}:{minute % 60:02d}:" for minute in range(24 * 60))
_CLOCK_SECONDS = tuple(f"{second:02d}" for second in range(60))
_DATES: dict[int, str] = {}  # days since the epoch -> "YYYY-MM-DD"; a few hundred entries a year


def rfc3339(instant: int, zone: str) -> str:
    """Whole seconds since the epoch as RFC 3339 text: with "Z" for zone "Z", else in that offset
    ("+03:00") with the local wall time."""
    day, second = divmod(instant + _OFFSET_SECONDS[zone], _DAY)
    text = _DATES.get(day)
    if text is None:
        text = _DATES[day] = (_EPOCH_DAY + timedelta(days=day)).isoformat()
    minute, second = divmod(second, _MINUTE)
    return f"{text}T{_CLOCK_MINUTES[minute]}{_CLOCK_SECONDS[second]}{zone}"


def _vin(rng: random.Random, wmi: str, model: str, year: int, plant: str) -> str:
    body = f"{wmi}{model}0{_MODEL_YEARS[(year - 2010) % 30]}{plant}{_between(rng, 0, 1_000_000):06d}"
    check = sum(map(operator.mul, map(_VIN_VALUES.__getitem__, body), _VIN_WEIGHTS)) % 11
    return f"{body[:8]}{'X' if check == 10 else check}{body[9:]}"


def _between(rng: random.Random, low: int, high: int) -> int:
    # randrange's checks cost more than the rest of a ticket's draws
    return low + int(rng.random() * (high - low))


def _poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


# ---- the event stream --------------------------------------------------------------------------------


class _Timeline:
    """The events of the day being made, and a heap of those that fall on later days."""

    def __init__(self) -> None:
        self.today: list[tuple[int, int, dict[str, Any]]] = []
        self.later: list[tuple[int, int, dict[str, Any]]] = []
        self.day_end = 0
        self.sequence = 0
        self.ids = 0

    def event_id(self, prefix: str) -> str:
        self.ids += 1
        return f"{prefix}-{self.ids:010d}"

    def add(self, at: int, event: dict[str, Any]) -> None:
        self.sequence += 1
        if at < self.day_end:
            self.today.append((at, self.sequence, event))
        else:
            heapq.heappush(self.later, (at, self.sequence, event))

    def close_day(self) -> list[tuple[int, int, dict[str, Any]]]:
        """The day's events in event-time order (ties in the order they were made)."""
        later, day, day_end = self.later, self.today, self.day_end
        while later and later[0][0] < day_end:
            day.append(heapq.heappop(later))
        day.sort()
        self.today = []
        return day


def events(spec: NetworkSpec) -> Iterator[dict[str, Any]]:
    """Every input event of the network over `spec.days` days, in event-time order.

    Each event is a plain dict in the shape of CONTRACT.md with an extra "topic" field
    (service-tickets, parts-stock or outlet-status), `occurred_at` as RFC 3339 text
    with an offset, and an `event_id` no other event shares. Events falling after the
    last day are not produced. Memory does not grow with the number of days.
    """
    network = _layout(spec)
    outlet_rng, stock_rng, ticket_rng = (_stream(spec, c) for c in ("outlets", "stock", "tickets"))
    timeline = _Timeline()
    origin = int(spec.first_instant().timestamp())
    tickets = _TicketDesk(spec, ticket_rng, timeline, network.outlets)
    for day in range(spec.days):
        day_start = origin + day * _DAY
        timeline.day_end = day_start + _DAY
        _outlet_day(spec, outlet_rng, timeline, network.outlets, day_start)
        _stock_day(spec, stock_rng, timeline, network.depots, day_start)
        for exporter in network.exporters:
            for market in exporter.markets:
                tickets.open_day(exporter, market, day_start)
        for _, _, event in timeline.close_day():
            yield event


def _outlet_day(spec: NetworkSpec, rng: random.Random, timeline: _Timeline, outlets: list[_Outlet],
                day_start: int) -> None:
    interval = spec.heartbeat_minutes * _MINUTE
    day_end = day_start + _DAY
    outage, suspension, closure = (spec.outage_share, spec.outage_share + spec.suspension_share,
                                   spec.outage_share + spec.suspension_share + spec.closure_share)
    add, event_id, random_ = timeline.add, timeline.event_id, rng.random
    for outlet in outlets:
        opens_at = day_start
        if outlet.reopens_at:
            if outlet.reopens_at >= day_end:
                continue
            # a new outlet takes the closed one's place today
            outlet.generation += 1
            outlet.phase = opens_at = outlet.reopens_at
            outlet.reopens_at = 0
        draw = random_()
        closes_at = day_end
        if draw < outage:
            begin = day_start + rng.randrange(_DAY)
            outlet.silent = (begin, begin + rng.randrange(25 * _HOUR, 72 * _HOUR))
        elif draw < suspension:
            begin = day_start + rng.randrange(_DAY)
            outlet.suspended = (begin, begin + rng.randrange(6 * _HOUR, 72 * _HOUR))
        elif draw < closure:
            closes_at = day_start + rng.randrange(_DAY)
        # the first beat at or after opens_at
        first = outlet.phase + max(0, -((outlet.phase - opens_at) // interval)) * interval
        capabilities = [MAINTENANCE, RESCUE] if outlet.rescue else [MAINTENANCE]
        outlet_id, exporter_id = outlet.outlet_id, outlet.exporter.exporter_id
        market, zone = outlet.market, outlet.zone
        silent_from, silent_to = outlet.silent
        suspended_from, suspended_to = outlet.suspended
        for beat in range(first, min(closes_at, day_end), interval):
            if silent_from <= beat < silent_to:
                continue
            at = beat + int(random_() * 60)  # systems do not report on the dot
            add(at, {"topic": TOPIC_OUTLETS, "event_id": event_id("o"), "exporter_id": exporter_id,
                     "outlet_id": outlet_id, "market": market,
                     "status": "suspended" if suspended_from <= beat < suspended_to else "operational",
                     "capabilities": list(capabilities), "occurred_at": rfc3339(at, zone)})
        if closes_at < day_end:
            add(closes_at, {"topic": TOPIC_OUTLETS, "event_id": event_id("o"), "exporter_id": exporter_id,
                            "outlet_id": outlet_id, "market": market, "status": "closed", "capabilities": [],
                            "occurred_at": rfc3339(closes_at, zone)})
            outlet.reopens_at = closes_at + rng.randrange(5 * _DAY, 30 * _DAY)
            outlet.silent = outlet.suspended = (0, 0)


def _stock_day(spec: NetworkSpec, rng: random.Random, timeline: _Timeline, depots: list[_Depot],
               day_start: int) -> None:
    interval = spec.stock_report_hours * _HOUR
    random_ = rng.random
    for depot in depots:
        if random_() < spec.stockout_share and depot.stockout_until <= day_start:
            depot.stockout_until = day_start + rng.randrange(1 * _DAY, 5 * _DAY)
        first_report = True
        for report_at in range(day_start + depot.phase, day_start + _DAY, interval):
            at = report_at + rng.randrange(10 * _MINUTE)
            out_of_stock = at < depot.stockout_until
            levels = depot.levels
            lines = []
            for index, part in enumerate(depot.parts):
                level = levels[part]
                if out_of_stock and index < depot.catalogue_size and index % 10:
                    level = 0  # a stock-out: all but a tenth of the catalogue is gone
                elif level == 0:
                    if part in depot.carried and random_() < 0.3:
                        level = _between(rng, 2, 9)  # restocked
                else:
                    draw = random_()
                    if draw < 0.02:
                        level = 0  # the last unit sold
                    elif draw < 0.2:
                        level = max(0, level + _between(rng, -2, 3))
                changed = level != levels[part]
                levels[part] = level
                # the day's first report lists every part; the others only what moved, and a few more
                if first_report or changed or random_() < 0.1:
                    lines.append({"part_number": part, "quantity_on_hand": level})
            first_report = False
            if lines:
                timeline.add(at, {"topic": TOPIC_STOCK, "event_id": timeline.event_id("s"),
                                  "exporter_id": depot.exporter.exporter_id, "market": depot.market,
                                  "depot_id": depot.depot_id, "lines": lines,
                                  "occurred_at": rfc3339(at, depot.zone)})


class _TicketDesk:
    """Opens each day's maintenance tickets and plans the rest of each ticket's life."""

    def __init__(self, spec: NetworkSpec, rng: random.Random, timeline: _Timeline,
                 outlets: list[_Outlet]) -> None:
        self.spec = spec
        self.rng = rng
        self.timeline = timeline
        self.outlets: dict[tuple[str, str], list[_Outlet]] = {}
        for outlet in outlets:
            self.outlets.setdefault((outlet.exporter.exporter_id, outlet.market), []).append(outlet)
        self.numbers: dict[str, int] = {}
        mix = spec.response_mix
        total = mix.on_time + mix.late + mix.never
        self.on_time_below = mix.on_time / total
        self.late_below = (mix.on_time + mix.late) / total
        self.year = spec.start.year

    def _response_delay(self) -> int:
        """Seconds to an on-time answer: most within a working day, a few close to the deadline."""
        while True:
            delay = int(self.rng.lognormvariate(_TYPICAL_RESPONSE, 0.9))
            if 300 <= delay <= _DEADLINE:
                return delay

    def open_day(self, exporter: _Exporter, market: str, day_start: int) -> None:
        rng = self.rng
        offset_seconds = _OFFSET_SECONDS[MARKET_OFFSETS[market]]
        for _ in range(_poisson(rng, self.spec.tickets_per_day_per_market)):
            local_hour = bisect.bisect(_OPENING_CUMULATIVE, rng.random() * _OPENING_CUMULATIVE[-1])
            opened = day_start + (local_hour * _HOUR - offset_seconds) % _DAY + _between(rng, 0, _HOUR)
            self._ticket(exporter, market, opened)

    def _ticket(self, exporter: _Exporter, market: str, opened: int) -> None:
        spec, rng, timeline = self.spec, self.rng, self.timeline
        number = self.numbers[exporter.exporter_id] = self.numbers.get(exporter.exporter_id, 0) + 1
        ticket_id = f"T-{exporter.number:03d}-{market}-{number:07d}"
        brand = rng.choice(exporter.brands)
        wmi = rng.choice(exporter.foreign_wmis if rng.random() < spec.grey_market_share else brand.wmis)
        vin = _vin(rng, wmi, rng.choice(brand.models), self.year - rng.randrange(4), rng.choice(brand.plants))
        outlet_id = None
        if rng.random() < 0.95:  # the rest come through a call centre, with no outlet named
            nearby = self.outlets[(exporter.exporter_id, market)]
            outlet_id = nearby[_between(rng, 0, len(nearby))].outlet_id
        local = MARKET_OFFSETS[market]

        def step(kind: str, at: int) -> None:
            event = {"topic": TOPIC_TICKETS, "event_id": timeline.event_id("t"), "type": kind,
                     "ticket_id": ticket_id, "exporter_id": exporter.exporter_id, "market": market,
                     "vin": vin}
            if outlet_id is not None:
                event["outlet_id"] = outlet_id
            event["occurred_at"] = rfc3339(at, "Z" if rng.random() < spec.utc_share else local)
            timeline.add(at, event)

        step("opened", opened)
        start = opened
        for _cycle in range(3):
            if rng.random() < spec.cancelled_share:
                step("cancelled", start + _between(rng, 30 * _MINUTE, 47 * _HOUR))  # withdrawn in time
                return
            draw = rng.random()
            if draw >= self.late_below:  # never answered
                if rng.random() < _GIVE_UP:
                    step("cancelled", start + _between(rng, 3 * _DAY, 14 * _DAY))  # too late to withdraw
                return
            if draw < self.on_time_below:
                # now and then exactly on the deadline, which is still on time
                delay = _DEADLINE if rng.random() < 0.003 else self._response_delay()
            else:
                # now and then one second late
                delay = _DEADLINE + 1 if rng.random() < 0.02 else _between(rng, _DEADLINE + 1, 7 * _DAY)
            answered = start + delay
            if rng.random() < _BY_RESOLUTION:
                resolved = answered  # fixed on the spot: the resolution is the answer
            else:
                step("responded", answered)
                resolved = answered + _between(rng, _HOUR, 4 * _DAY)
            step("resolved", resolved)
            if rng.random() >= spec.reopened_share:
                return
            start = resolved + _between(rng, _DAY, 20 * _DAY)
            step("reopened", start)

