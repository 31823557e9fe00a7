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

    def describe(self, now: Micros) -> dict:
        if self.status is not OutletStatus.operational:
            state = self.status.value
        else:
            state = "active" if now <= self.expires_at else "unknown"
        return {"outlet_id": self.outlet_id, "state": state, "status": self.status.value,
                "emergency_rescue_24h": self.rescue, "last_status_at": stamp(self.last_seen)}


class ExporterOutlets:
    """Counts of active and rescue-capable outlets per market, kept as outlets change."""

    __slots__ = ("active", "active_total", "outlets", "rescue")

    def __init__(self) -> None:
        self.outlets: dict[str, Outlet] = {}
        self.active: Counter[str] = Counter()
        self.rescue: Counter[str] = Counter()
        self.active_total = 0

    def status(self, at: Micros, event_id: str, outlet_id: str, market: str, status: OutletStatus,
               capabilities: list[Capability], stale_after: Micros) -> tuple[Outlet | None, set[str]]:
        """Apply a status event; returns the outlet if it changed, and the markets it touched."""
        outlet = self.outlets.get(outlet_id)
        if outlet is not None and (outlet.last_seen, outlet.event_id) >= (at, event_id):
            return None, set()
        touched = {market}
        if outlet is not None:
            touched.add(outlet.market)
            self._uncount(outlet)
        outlet = Outlet(outlet_id, market, status, Capability.emergency_rescue_24h in capabilities,
                        at, event_id, at + stale_after)
        self.outlets[outlet_id] = outlet
        if status is OutletStatus.operational:
            self._count(outlet)
        return outlet, touched

    def expire(self, outlet_id: str, expires_at: Micros) -> str | None:
        """An outlet's staleness timer fell due; returns its market if it stopped counting."""
        outlet = self.outlets.get(outlet_id)
        if outlet is None or outlet.expires_at != expires_at or not outlet.counted:
            return None
        self._uncount(outlet)
        return outlet.market

    def restale(self, now: Micros, stale_after: Micros) -> list[Outlet]:
        """Re-derive every outlet's expiry under a new `stale_after`; returns those still counting."""
        live = []
        for outlet in self.outlets.values():
            outlet.expires_at = outlet.last_seen + stale_after
            if outlet.counted and now > outlet.expires_at:
                self._uncount(outlet)
            elif not outlet.counted and outlet.status is OutletStatus.operational and now <= outlet.expires_at:
                self._count(outlet)
            if outlet.counted:
                live.append(outlet)
        return live

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

    def coverage_evidence(self, market: str, now: Micros) -> dict:
        return {
            "active_outlets": self.active[market],
            "rescue_outlets": self.rescue[market],
            "outlets": [o.describe(now) for o in sorted(self.outlets.values(), key=lambda o: o.outlet_id)
                        if o.market == market],
        }
