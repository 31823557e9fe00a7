"""The shapes the API answers with (its OpenAPI response models).

Alerts and snapshots are the messages of CONTRACT.md as the history store keeps them; the
models here accept fields a newer worker may add (forward compatibility) and drop them.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from monitor.contracts.outputs import ComplianceAlert, ComplianceSnapshot, Obligation
from monitor.contracts.registry import ExporterRegistration


class Alert(ComplianceAlert):
    """A ComplianceAlert in its latest stored status. For an automaker, `accountable` names only
    exporters it may see."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class AlertPage(BaseModel):
    """One page of alerts, oldest opened first; `next` is the cursor of the following page."""

    items: list[Alert]
    next: str | None = Field(description="pass as `cursor` for the next page; null on the last page")


class Transition(Alert):
    """One stored transition of an alert: the message as published, and its place in the hash chain."""

    seq: int = Field(description="position in the store's append-only log")
    hash: str = Field(description="sha256 hex over prev_hash and the transition's canonical content")
    prev_hash: str = Field(description="hash of the exporter's previous transition (empty for the first)")


class AlertDetail(Alert):
    """An alert with every transition stored for it, oldest first."""

    transitions: list[Transition]


class Snapshot(ComplianceSnapshot):
    """The latest figures of one exporter in one market."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class ComplianceList(BaseModel):
    """Latest figures per exporter and market, ordered by exporter then market."""

    items: list[Snapshot]


class Registration(ExporterRegistration):
    """An exporter's registration as the caller may see it."""

    @model_validator(mode="after")
    def _distributor_named_by_automaker(self) -> Registration:
        # replaces the registry's check: a distributor's automakers the caller may not see are left out,
        # which can leave none (a token naming only the distributor)
        return self


class Exporter(BaseModel):
    """An exporter the caller may see, with its registration when one is known."""

    exporter_id: str
    registration: Registration | None = Field(
        description="the latest registration; for an automaker, `authorised_by` names only exporters it may see")


class ExporterList(BaseModel):
    items: list[Exporter]


class DayFigure(BaseModel):
    """One obligation's figure for one exporter, market and UTC day (the day's last snapshot)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    exporter_id: str
    market: str = Field(description='market code; "*" for exporter-wide obligations (network_size)')
    obligation: Obligation
    day: date
    figure: dict[str, Any] = Field(description="the obligation's part of the day's last snapshot")
    met: bool | None = Field(description="whether the obligation held at the day's last snapshot; null: undefined")
    met_all_day: bool | None = Field(description="false when any snapshot of the day found it not met")
    first_as_of: datetime
    last_as_of: datetime
    policy_version: str
    carried: bool = Field(False, description="true for a day with no snapshot of its own: it kept the state "
                                             "of the last snapshot before it")


class History(BaseModel):
    """Daily figures of one exporter, ordered by day, obligation and market."""

    exporter_id: str
    items: list[DayFigure]


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    """Whether the API can answer: each dependency's check, `ok` or why not."""

    status: Literal["ready", "not_ready"]
    checks: dict[str, str] = Field(description="`store` and `broker`: `ok`, or why not")


class Delivery(BaseModel):
    """One alert transition's delivery to one webhook, and how it went."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    delivery_id: str = Field(description="the `delivery_id` of the body sent, the same on every attempt")
    webhook_id: str
    alert_id: str
    exporter_id: str = Field(description="the alert's exporter")
    seq: int = Field(description="the transition's position in the history store's log")
    status: Literal["pending", "delivered", "expired"] = Field(
        description="pending: not yet accepted, tried again; delivered: a 2xx answer came; expired: given up "
                    "after the webhook's max age")
    attempts: int = Field(description="requests made so far")
    created_at: datetime = Field(description="when the transition was stored and the delivery enqueued")
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None = Field(description="when it is tried next; null once delivered or expired")
    last_status_code: int | None = Field(description="the HTTP status of the last answer; null when none came")
    last_error: str | None = Field(description="why the last attempt failed (status and the start of the answer, "
                                               "or the network error); null after a success")
    delivered_at: datetime | None


class DeliveryPage(BaseModel):
    """One page of webhook deliveries, in the order the transitions were stored (then by webhook)."""

    items: list[Delivery]
    next: str | None = Field(description="pass as `cursor` for the next page; null on the last page")
