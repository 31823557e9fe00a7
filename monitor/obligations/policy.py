"""Which thresholds apply at an instant: policy versions by `effective_from`."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction

from monitor.contracts.policy import PolicyFile, PolicyVersion
from monitor.obligations.timebase import HOUR, Micros, utc_midnight


@dataclass(frozen=True, slots=True)
class Thresholds:
    """One policy version, resolved to the units the core computes in."""

    version: str
    effective_from: Micros
    deadline: Micros
    warn_at: Micros
    min_rate: Fraction
    min_quantity: int
    stale_after: Micros
    min_outlets: Mapping[str, int]
    renewal_min_ratio: Fraction
    renewal_min_share_of_days: Fraction

    @classmethod
    def of(cls, version: PolicyVersion) -> Thresholds:
        p = {name: parameter.value for name, parameter in version.resolved().items()}
        return cls(
            version=version.version,
            effective_from=utc_midnight(version.effective_from),
            deadline=round(p["response_48h.deadline_hours"] * HOUR),
            warn_at=round(p["response_48h.warn_at_hours"] * HOUR),
            # str() first, so 0.2 is exactly one fifth rather than the nearest binary float
            min_rate=Fraction(str(p["parts_inventory.min_rate"])),
            min_quantity=p["parts_inventory.min_quantity"],
            stale_after=round(p["outlets.stale_after_hours"] * HOUR),
            min_outlets=dict(p["network_size.min_outlets"]),
            renewal_min_ratio=Fraction(str(p["renewal.response_48h.min_ratio"])),
            renewal_min_share_of_days=Fraction(str(p["renewal.min_share_of_days_met"])),
        )


class PolicyBook:
    """Policy versions in force over time.

    A version applies from 00:00:00Z of its `effective_from` date until the next
    version's; before the earliest version's date, the earliest applies.
    """

    def __init__(self, policy: PolicyFile) -> None:
        versions = sorted(policy.root, key=lambda v: v.effective_from)
        self._source = {v.version: v for v in versions}
        self._thresholds = [Thresholds.of(v) for v in versions]
        self._starts = [t.effective_from for t in self._thresholds]

    def at(self, instant: Micros) -> Thresholds:
        index = bisect.bisect_right(self._starts, instant) - 1
        return self._thresholds[max(index, 0)]

    def earliest(self) -> Thresholds:
        return self._thresholds[0]

    def changes(self) -> list[Thresholds]:
        """The versions that replace an earlier one, in order: instants where judgement changes."""
        return self._thresholds[1:]

    def in_force_between(self, start: Micros, end: Micros) -> list[str]:
        """Names of the versions in force at some instant of [start, end]."""
        first = bisect.bisect_right(self._starts, start) - 1
        last = bisect.bisect_right(self._starts, end) - 1
        return [t.version for t in self._thresholds[max(first, 0) : max(last, 0) + 1]]

    def describe(self, names: Iterable[str]) -> list[PolicyVersion]:
        """The named versions with every parameter, defaults filled in, for reports."""
        wanted = set(names)
        return [
            PolicyVersion(version=v.version, effective_from=v.effective_from, parameters=v.resolved())
            for v in self._source.values()
            if v.version in wanted
        ]
