"""Alerts as the core knows them: identity, episode times, evidence."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from monitor.contracts.outputs import Obligation, Severity
from monitor.obligations.timebase import Micros, stamp

_ALERT_NAMESPACE = uuid.UUID("6f1c3a52-8d0e-5b7a-9c61-2f4e8a0d7b13")


def alert_id(
    exporter_id: str, obligation: Obligation, market: str | None, subject: str, severity: Severity,
    episode_start: Micros,
) -> str:
    """The same fact always gets the same id, so a repeated delivery is recognisable."""
    name = f"{exporter_id}|{obligation.value}|{market or '*'}|{subject}|{severity.value}|{episode_start}"
    return str(uuid.uuid5(_ALERT_NAMESPACE, name))


@dataclass(slots=True)
class AlertRecord:
    """An alert episode: opened at an event time, perhaps resolved at a later one."""

    exporter_id: str
    market: str | None
    obligation: Obligation
    severity: Severity
    subject: str
    opened_at: Micros
    policy_version: str
    evidence: dict[str, Any]
    resolved_at: Micros | None = None
    alert_id: str = field(init=False)

    def __post_init__(self) -> None:
        self.alert_id = alert_id(
            self.exporter_id, self.obligation, self.market, self.subject, self.severity, self.opened_at
        )

    @property
    def renewal_relevant(self) -> bool:
        return self.severity is Severity.breach

    def status_at(self, now: Micros) -> str:
        return "resolved" if self.resolved_at is not None and self.resolved_at <= now else "open"

    def message(self, now: Micros, accountable: list[str], raised_at: Micros | None = None) -> dict[str, Any]:
        """The alert as its ComplianceAlert message (plain JSON data), in its status at `now`."""
        status = self.status_at(now)
        return {
            "alert_id": self.alert_id, "exporter_id": self.exporter_id, "market": self.market,
            "obligation": self.obligation.value, "severity": self.severity.value, "status": status,
            "subject": self.subject, "opened_at": stamp(self.opened_at),
            "resolved_at": stamp(self.resolved_at) if status == "resolved" and self.resolved_at is not None else None,
            "raised_at": None if raised_at is None else stamp(raised_at), "clock": None,
            "renewal_relevant": self.renewal_relevant, "policy_version": self.policy_version,
            "accountable": accountable, "evidence": self.evidence,
        }
