"""The history store's tables (SQLAlchemy 2 declarative models).

The table and column names are part of what readers rely on (the API, the renewal report,
an operator's SQL); a change to them is a new Alembic revision in `migrations/versions/`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, Boolean, Date, DateTime, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# SQLite gives a row id only to a column declared exactly INTEGER PRIMARY KEY
SequenceNumber = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """An aware datetime in UTC, on every database.

    SQLite keeps no offset, so instants are stored there as naive UTC and read back with
    UTC attached; PostgreSQL keeps them as `timestamptz`. A naive datetime is refused
    rather than guessed at.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: every instant must carry an offset")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime(), dict[str, Any]: JSON(), str: String()}


class AlertTransition(Base):
    """One published alert message, appended and never changed; hash-chained per exporter."""

    __tablename__ = "alert_transitions"

    seq: Mapped[int] = mapped_column(SequenceNumber, primary_key=True, autoincrement=True)
    exporter_id: Mapped[str]
    alert_id: Mapped[str]
    status: Mapped[str]
    severity: Mapped[str]
    obligation: Mapped[str]
    market: Mapped[str | None]
    subject: Mapped[str]
    opened_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    raised_at: Mapped[datetime | None]
    policy_version: Mapped[str]
    message: Mapped[dict[str, Any]]
    source_topic: Mapped[str]
    source_partition: Mapped[int]
    source_offset: Mapped[int] = mapped_column(BigInteger())
    prev_hash: Mapped[str]
    hash: Mapped[str]

    __table_args__ = (
        UniqueConstraint("source_topic", "source_partition", "source_offset", name="uq_alert_transitions_source"),
        Index("ix_alert_transitions_exporter_seq", "exporter_id", "seq"),
        Index("ix_alert_transitions_alert_seq", "alert_id", "seq"),
    )


class AlertRepeat(Base):
    """A published message that repeated its alert's latest transition (raised_at aside).

    Not a transition: kept only so that reading the topic again recognises it by its offset,
    even after later transitions of the alert made it differ from the latest one.
    """

    __tablename__ = "alert_repeats"

    source_topic: Mapped[str] = mapped_column(primary_key=True)
    source_partition: Mapped[int] = mapped_column(primary_key=True)
    source_offset: Mapped[int] = mapped_column(BigInteger(), primary_key=True)
    alert_id: Mapped[str]
    repeats_seq: Mapped[int] = mapped_column(BigInteger())
    raised_at: Mapped[datetime | None]


class ChainHead(Base):
    """The last transition of each exporter's chain, and how many there are."""

    __tablename__ = "chain_heads"

    exporter_id: Mapped[str] = mapped_column(primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger())
    last_hash: Mapped[str]
    count: Mapped[int] = mapped_column(BigInteger())


class Alert(Base):
    """Each alert as its latest stored transition says (a projection of `alert_transitions`)."""

    __tablename__ = "alerts"

    alert_id: Mapped[str] = mapped_column(primary_key=True)
    exporter_id: Mapped[str]
    market: Mapped[str | None]
    obligation: Mapped[str]
    severity: Mapped[str]
    status: Mapped[str]
    subject: Mapped[str]
    opened_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    raised_at: Mapped[datetime | None]
    changed_at: Mapped[datetime]  # raised_at of the latest transition, else opened_at: what `since` filters on
    renewal_relevant: Mapped[bool]
    policy_version: Mapped[str]
    message: Mapped[dict[str, Any]]
    last_seq: Mapped[int] = mapped_column(BigInteger())
    transitions: Mapped[int] = mapped_column(Integer())

    __table_args__ = (
        Index("ix_alerts_opened_at_alert_id", "opened_at", "alert_id"),
        Index("ix_alerts_exporter_id", "exporter_id"),
        Index("ix_alerts_changed_at", "changed_at"),
    )


class ComplianceLatest(Base):
    """The latest ComplianceSnapshot (by as_of) of each exporter and market."""

    __tablename__ = "compliance_latest"

    exporter_id: Mapped[str] = mapped_column(primary_key=True)
    market: Mapped[str] = mapped_column(primary_key=True)
    as_of: Mapped[datetime]
    policy_version: Mapped[str]
    snapshot: Mapped[dict[str, Any]]


class DailyFigure(Base):
    """One obligation's figure of one exporter and market on one UTC day ("*": exporter-wide)."""

    __tablename__ = "daily_figures"

    exporter_id: Mapped[str] = mapped_column(primary_key=True)
    market: Mapped[str] = mapped_column(primary_key=True)
    obligation: Mapped[str] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date(), primary_key=True)
    figure: Mapped[dict[str, Any]]
    met: Mapped[bool | None] = mapped_column(Boolean())
    met_all_day: Mapped[bool | None] = mapped_column(Boolean())
    first_as_of: Mapped[datetime]
    last_as_of: Mapped[datetime]
    policy_version: Mapped[str]
    carried: Mapped[bool] = mapped_column(Boolean())  # no snapshot that day: the state of the last one before


class PolicyVersionRow(Base):
    """A policy version as applied: every parameter with its value, status and source."""

    __tablename__ = "policy_versions"

    version: Mapped[str] = mapped_column(primary_key=True)
    effective_from: Mapped[date] = mapped_column(Date())
    parameters: Mapped[dict[str, Any]]


class Registration(Base):
    """Each exporter's latest registration; one from the registry topic wins over one from the file."""

    __tablename__ = "registrations"

    exporter_id: Mapped[str] = mapped_column(primary_key=True)
    registration: Mapped[dict[str, Any]]
    origin: Mapped[str]  # "topic" or "file"


class Webhook(Base):
    """An automaker's alert webhook as last configured (MONITOR_WEBHOOKS): its id and exporters only.

    Kept so the API can tell whose webhook a delivery belongs to without reading the webhooks
    file (and its secrets); written by whoever enqueues deliveries, when it opens the store.
    """

    __tablename__ = "webhooks"

    webhook_id: Mapped[str] = mapped_column(primary_key=True)
    exporters: Mapped[list[str]] = mapped_column(JSON())
    configured_at: Mapped[datetime]


class WebhookDelivery(Base):
    """The outbox: one alert transition to send to one webhook, with the state of its delivery.

    Written in the transaction that stores the transition; `body` holds the exact bytes sent
    (signed afresh at every attempt). `status`: pending, delivered or expired. A deliverer
    claims a pending row by setting `claimed_by` and `claimed_until` with a conditional UPDATE,
    so two deliverers never send one row at the same time.
    """

    __tablename__ = "webhook_deliveries"

    delivery_id: Mapped[str] = mapped_column(primary_key=True)
    webhook_id: Mapped[str]
    alert_id: Mapped[str]
    exporter_id: Mapped[str]
    transition_seq: Mapped[int] = mapped_column(BigInteger())
    body: Mapped[str] = mapped_column(Text())
    created_at: Mapped[datetime]
    status: Mapped[str]
    attempts: Mapped[int] = mapped_column(Integer())
    next_attempt_at: Mapped[datetime | None]  # null once delivered or expired
    last_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None]
    last_status_code: Mapped[int | None] = mapped_column(Integer())
    delivered_at: Mapped[datetime | None]
    claimed_by: Mapped[str | None]
    claimed_until: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("webhook_id", "transition_seq", name="uq_webhook_deliveries_transition"),
        Index("ix_webhook_deliveries_status_next", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_alert", "webhook_id", "alert_id", "transition_seq"),
        Index("ix_webhook_deliveries_seq", "transition_seq", "webhook_id"),
    )
