"""Parts inventory rate: stocked common-malfunction parts over the catalogue, per market."""

from __future__ import annotations

import math
from collections.abc import Iterable
from fractions import Fraction


class MarketStock:
    """One exporter's stock in one market: the latest quantity of each (depot, part).

    Totals per part are kept incrementally, and so is the count of catalogue parts whose
    total reaches `min_quantity`: a report costs O(its lines), not O(the catalogue).
    """

    __slots__ = ("catalogue", "latest", "min_quantity", "min_rate", "required", "stocked", "totals")

    def __init__(self, catalogue: frozenset[str] | None, min_quantity: int, min_rate: Fraction) -> None:
        self.catalogue = catalogue  # None: the exporter is not registered, the figure is undefined
        self.min_quantity = min_quantity
        self.min_rate = min_rate
        self.required = 0
        self.latest: dict[tuple[str, str], tuple[int, str, int]] = {}  # (depot, part) -> (at, event_id, qty)
        self.totals: dict[str, int] = {}
        self.stocked = 0
        self.rescore(min_quantity, min_rate)

    def report(self, at: int, event_id: str, depot_id: str, lines: Iterable[tuple[str, int]]) -> bool:
        """Apply one depot report; True when any quantity changed.

        A line replaces the depot's quantity of that part only if the report is newer
        (by occurred_at, then event_id) than the one that set it.
        """
        quantities: dict[str, int] = {}
        for part, quantity in lines:
            quantities[part] = quantities.get(part, 0) + quantity  # one part on two lines: both bins count
        changed = False
        stamp = (at, event_id)
        catalogue = self.catalogue or ()
        for part, quantity in quantities.items():
            key = (depot_id, part)
            previous = self.latest.get(key)
            if previous is not None and (previous[0], previous[1]) >= stamp:
                continue
            old = previous[2] if previous is not None else 0
            self.latest[key] = (at, event_id, quantity)
            if quantity == old:
                continue
            changed = True
            before = self.totals.get(part, 0)
            after = before + quantity - old
            self.totals[part] = after
            if part in catalogue:
                self.stocked += (after >= self.min_quantity) - (before >= self.min_quantity)
        return changed

    def rescore(self, min_quantity: int, min_rate: Fraction) -> None:
        """Recount under new thresholds (a policy change).

        `required` is the fewest stocked parts that make the rate reach `min_rate`,
        so judging a report is one integer comparison.
        """
        self.min_quantity = min_quantity
        self.min_rate = min_rate
        size = len(self.catalogue or ())
        self.required = math.ceil(min_rate * size)
        self.stocked = sum(1 for part in self.catalogue or () if self.totals.get(part, 0) >= min_quantity)

    def rate(self) -> Fraction | None:
        if not self.catalogue:
            return None
        return Fraction(self.stocked, len(self.catalogue))

    @property
    def compliant(self) -> bool | None:
        """Rate at or above the minimum; None when the catalogue is empty or unknown."""
        return None if not self.catalogue else self.stocked >= self.required

    def figure(self) -> dict:
        rate = self.rate()
        return {
            "catalogue": None if self.catalogue is None else len(self.catalogue),
            "stocked": None if self.catalogue is None else self.stocked,
            "rate": None if rate is None else float(rate),
            "compliant": self.compliant,
        }

    def evidence(self) -> dict:
        catalogue = sorted(self.catalogue or ())
        return {
            **self.figure(),
            "min_rate": float(self.min_rate),
            "min_quantity": self.min_quantity,
            "quantities": {part: self.totals.get(part, 0) for part in catalogue},
            "missing_parts": [p for p in catalogue if self.totals.get(p, 0) < self.min_quantity],
        }
