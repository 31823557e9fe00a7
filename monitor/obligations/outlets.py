"""Outlets of one exporter: which are active, emergency coverage per market, network size."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from monitor.contracts.events import Capability, OutletStatus
from monitor.obligations.timebase import Micros, stamp


@dataclass(slots=True)
class Outlet:
    outlet_id: str
    market: str
    status: OutletStatus
    rescue: bool
    last_seen: Micros
    event_id: str
    expires_at: Micros  # active while now <= expires_at
    counted: bool = False  # currently included in the active counts
    timer_at: Micros | None = None  # when its pending staleness timer falls due, if one is pending

    def describe(self) -> dict:
        """The outlet as evidence: its state is what the counts hold (stale outlets are `unknown`)."""
        if self.status is not OutletStatus.operational:
            state = self.status.value
        else:
            state = "active" if self.counted else "unknown"
        return {"outlet_id": self.outlet_id, "state": state, "status": self.status.value,
                "emergency_rescue_24h": self.rescue, "last_status_at": stamp(self.last_seen)}


class ExporterOutlets:
    """Counts of active and rescue-capable outlets per market, kept as outlets change.

    A heartbeat from an outlet that is already active changes no count, and is
    reported as such, so the engine does not re-judge anything for it.
    """

    __slots__ = ("active", "active_total", "outlets", "rescue")

    def __init__(self) -> None:
        self.outlets: dict[str, Outlet] = {}
        self.active: Counter[str] = Counter()
        self.rescue: Counter[str] = Counter()
        self.active_total = 0

    def status(self, at: Micros, event_id: str, outlet_id: str, market: str, status: OutletStatus,
               capabilities: list[Capability], stale_after: Micros) -> tuple[Outlet | None, tuple[str, ...]]:
        """Apply a status event.

        Returns the outlet (None when the event is older than what is known) and the
        markets whose counts changed (empty for a plain heartbeat).
        """
        rescue = Capability.emergency_rescue_24h in capabilities
        outlet = self.outlets.get(outlet_id)
        if outlet is None:
            outlet = self.outlets[outlet_id] = Outlet(outlet_id, market, status, rescue, at, event_id,
                                                      at + stale_after)
            if status is OutletStatus.operational:
                self._count(outlet)
                return outlet, (market,)
            return outlet, ()
        if (outlet.last_seen, outlet.event_id) >= (at, event_id):
            return None, ()
        same = outlet.counted and outlet.market == market and outlet.rescue == rescue
        outlet.last_seen, outlet.event_id, outlet.expires_at = at, event_id, at + stale_after
        if same and status is OutletStatus.operational:
            outlet.status = status
            return outlet, ()
        touched = (outlet.market, market) if outlet.market != market else (market,)
        was_counted = outlet.counted
        self._uncount(outlet)
        outlet.market, outlet.status, outlet.rescue = market, status, rescue
        if status is OutletStatus.operational:
            self._count(outlet)
        return outlet, touched if (was_counted or outlet.counted) else ()

    def expire(self, outlet_id: str, due: Micros) -> tuple[str | None, Micros | None]:
        """An outlet's staleness timer fell due.

        Returns the market whose counts changed (if the outlet stopped counting), and
        the instant to re-arm the timer at when the outlet was heard from since.
        """
        outlet = self.outlets[outlet_id]
        outlet.timer_at = None
        if outlet.expires_at > due:
            return None, outlet.expires_at
        if outlet.expires_at == due and outlet.counted:
            self._uncount(outlet)
            return outlet.market, None
        return None, None

    def restale(self, now: Micros, stale_after: Micros) -> None:
        """Re-derive every outlet's expiry and activity under a new `stale_after`."""
        for outlet in self.outlets.values():
            outlet.expires_at = outlet.last_seen + stale_after
            if outlet.counted and now > outlet.expires_at:
                self._uncount(outlet)
            elif not outlet.counted and outlet.status is OutletStatus.operational and now <= outlet.expires_at:
                self._count(outlet)

    def _count(self, outlet: Outlet) -> None:
        outlet.counted = True
        self.active[outlet.market] += 1
        self.rescue[outlet.market] += outlet.rescue
        self.active_total += 1

    def _uncount(self, outlet: Outlet) -> None:
        if outlet.counted:
            outlet.counted = False
            self.active[outlet.market] -= 1
            self.rescue[outlet.market] -= outlet.rescue
            self.active_total -= 1

    def coverage_evidence(self, market: str) -> dict:
        return {
            "active_outlets": self.active[market],
            "rescue_outlets": self.rescue[market],
            "outlets": [o.describe() for o in sorted(self.outlets.values(), key=lambda o: o.outlet_id)
                        if o.market == market],
        }
