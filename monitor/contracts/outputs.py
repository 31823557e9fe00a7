"""What the monitor publishes: alerts, compliance figures, rejected messages, evaluations."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from monitor.contracts.common import OutputMessage


class Obligation(StrEnum):
    response_48h = "response_48h"
    parts_inventory = "parts_inventory"
    emergency_coverage = "emergency_coverage"
    network_size = "network_size"
    authorisation = "authorisation"


class Severity(StrEnum):
    warning = "warning"  # at risk
    breach = "breach"


class AlertStatus(StrEnum):
    open = "open"
    resolved = "resolved"
    retracted = "retracted"  # late data showed it never applied


class AlertClock(StrEnum):
    """Which clock raised an alert (OBLIGATIONS.md, Time)."""

    wall_clock = "wall_clock"  # inferred from silence: late data may still disprove it
    event_time = "event_time"  # shown by the exporter's own data


class ClockState(StrEnum):
    """How an exporter's live clock runs (OBLIGATIONS.md, Time)."""

    current = "current"  # its data is at most `clock.lag_bound` behind: wall clock
    backlog = "backlog"  # it delivers data that is behind: its own event time
    quiet = "quiet"  # nothing from it for `clock.idle_after` while the worker has read everything: wall clock


class ComplianceAlert(OutputMessage):
    """One alert in its current status; key `alert_id`. Published at each transition."""

    alert_id: str = Field(description="stable: the same fact always has the same id")
    exporter_id: str
    market: str | None = Field(description="null for exporter-wide alerts")
    obligation: Obligation
    severity: Severity
    status: AlertStatus
    subject: str = Field(description="what it is about: ticket#cycle, market, outlet, …")
    opened_at: datetime = Field(description="event time the breach or risk began")
    resolved_at: datetime | None = Field(description="event time it ended; null while open")
    raised_at: datetime | None = Field(description="when the monitor published it; null from evaluate")
    clock: AlertClock | None = Field(
        None, description="live: which clock raised it (event_time: the exporter's data shows it; wall_clock: "
                          "inferred from silence, late data may still disprove it); null from evaluate")
    renewal_relevant: bool
    policy_version: str
    accountable: list[str] = Field(
        description="exporter ids that answer for it: the exporter, and for a distributor the "
        "automakers that authorised it"
    )
    evidence: dict[str, Any]


class ResponseFigure(OutputMessage):
    compliant: int
    breached: int
    withdrawn: int
    pending: int
    ratio: float | None = Field(description="compliant / (compliant + breached); null with no such cycles")
    p50_hours: float | None
    p95_hours: float | None


class InventoryFigure(OutputMessage):
    catalogue: int | None = Field(description="null for an exporter with no registration")
    stocked: int | None
    rate: float | None = Field(description="null when the catalogue is empty or unknown")
    compliant: bool | None


class CoverageFigure(OutputMessage):
    active_outlets: int
    rescue_outlets: int
    covered: bool
    major_market: bool


class MarketFigures(OutputMessage):
    exporter_id: str
    market: str
    response_48h: ResponseFigure
    parts_inventory: InventoryFigure
    emergency_coverage: CoverageFigure


class NetworkSizeFigure(OutputMessage):
    active_outlets: int
    required: int | None = Field(description="null when the policy sets no minimum for the category")
    compliant: bool | None


class ExporterFigures(OutputMessage):
    exporter_id: str
    network_size: NetworkSizeFigure


class Freshness(OutputMessage):
    """How current an exporter's data is, so that "no breaches" can be told from "no data"."""

    latest_event_at: datetime | None = Field(description="the latest occurred_at received from the exporter")
    lag_seconds: float | None = Field(description="how far latest_event_at is behind the wall clock, at as_of")
    clock: AlertClock = Field(description="the clock its figures and alerts run on now")
    state: ClockState


class ComplianceSnapshot(MarketFigures):
    """Live figures of one exporter in one market; key `exporter_id:market` (compacted)."""

    as_of: datetime
    policy_version: str
    network_size: NetworkSizeFigure
    freshness: Freshness | None = Field(None, description="the exporter's data freshness (live workers)")


class RejectedMessage(OutputMessage):
    """A message that could not be used, kept whole on the dead-letter topic."""

    reason: str
    errors: list[dict[str, Any]]
    topic: str
    partition: int | None
    offset: int | None
    key: str | None
    value: str = Field(description="the original bytes: UTF-8 text, or base64 when not UTF-8")
    value_encoding: str = Field(default="utf-8", description="utf-8 or base64")
    rejected_at: datetime


class RejectedLine(OutputMessage):
    source: str = Field(description="file:line")
    reason: str


class DataQualityIssue(OutputMessage):
    kind: str
    exporter_id: str | None
    subject: str
    detail: str
    event_ids: list[str] = Field(default_factory=list)


class AppliedParameter(OutputMessage):
    value: Any
    status: str
    source: str


class AppliedPolicy(OutputMessage):
    version: str
    effective_from: str
    parameters: dict[str, AppliedParameter]


class Evaluation(OutputMessage):
    """The document `monitor evaluate --format json` prints."""

    as_of: datetime | None
    policy_versions: list[str]
    policies: list[AppliedPolicy]
    figures: list[MarketFigures]
    exporters: list[ExporterFigures]
    alerts: list[ComplianceAlert]
    rejected: list[RejectedLine]
    data_quality: list[DataQualityIssue]
