"""The history store's tables: alert transitions (hash-chained), alerts, compliance, daily figures,
policy versions, registrations.

Revision ID: 0001
Revises:
Create Date: 2026-11-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# written out rather than imported from the models, so this revision stays as it was when the models change
SEQUENCE_NUMBER = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite: INTEGER PRIMARY KEY is the row id
INSTANT = sa.DateTime(timezone=True)


revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alert_transitions",
        sa.Column("seq", SEQUENCE_NUMBER, primary_key=True, autoincrement=True),
        sa.Column("exporter_id", sa.String(), nullable=False),
        sa.Column("alert_id", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("severity", sa.String(), nullable=False),
        sa.Column("obligation", sa.String(), nullable=False),
        sa.Column("market", sa.String(), nullable=True),
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("opened_at", INSTANT, nullable=False),
        sa.Column("resolved_at", INSTANT, nullable=True),
        sa.Column("raised_at", INSTANT, nullable=True),
        sa.Column("policy_version", sa.String(), nullable=False),
        sa.Column("message", sa.JSON(), nullable=False),
        sa.Column("source_topic", sa.String(), nullable=False),
        sa.Column("source_partition", sa.Integer(), nullable=False),
        sa.Column("source_offset", sa.BigInteger(), nullable=False),
        sa.Column("prev_hash", sa.String(), nullable=False),
        sa.Column("hash", sa.String(), nullable=False),
        sa.UniqueConstraint("source_topic", "source_partition", "source_offset", name="uq_alert_transitions_source"),
    )
    op.create_index("ix_alert_transitions_exporter_seq", "alert_transitions", ["exporter_id", "seq"])
    op.create_index("ix_alert_transitions_alert_seq", "alert_transitions", ["alert_id", "seq"])

    op.create_table(
        "alert_repeats",
        sa.Column("source_topic", sa.String(), primary_key=True),
        sa.Column("source_partition", sa.Integer(), primary_key=True),
        sa.Column("source_offset", sa.BigInteger(), primary_key=True),
        sa.Column("alert_id", sa.String(), nullable=False),
        sa.Column("repeats_seq", sa.BigInteger(), nullable=False),
        sa.Column("raised_at", INSTANT, nullable=True),
    )

    op.create_table(
        "chain_heads",
        sa.Column("exporter_id", sa.String(), primary_key=True),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
    )

    op.create_table(
        "alerts",
        sa.Column("alert_id", sa.String(), primary_key=True),
        sa.Column("exporter_id", sa.String(), nullable=False),
        sa.Column("market", sa.String(), nullable=True),
        sa.Column("obligation", sa.String(), nullable=False),
        sa.Column("severity", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("opened_at", INSTANT, nullable=False),
        sa.Column("resolved_at", INSTANT, nullable=True),
        sa.Column("raised_at", INSTANT, nullable=True),
        sa.Column("changed_at", INSTANT, nullable=False),
        sa.Column("renewal_relevant", sa.Boolean(), nullable=False),
        sa.Column("policy_version", sa.String(), nullable=False),
        sa.Column("message", sa.JSON(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("transitions", sa.Integer(), nullable=False),
    )
    op.create_index("ix_alerts_opened_at_alert_id", "alerts", ["opened_at", "alert_id"])
    op.create_index("ix_alerts_exporter_id", "alerts", ["exporter_id"])
    op.create_index("ix_alerts_changed_at", "alerts", ["changed_at"])

    op.create_table(
        "compliance_latest",
        sa.Column("exporter_id", sa.String(), primary_key=True),
        sa.Column("market", sa.String(), primary_key=True),
        sa.Column("as_of", INSTANT, nullable=False),
        sa.Column("policy_version", sa.String(), nullable=False),
        sa.Column("snapshot", sa.JSON(), nullable=False),
    )

    op.create_table(
        "daily_figures",
        sa.Column("exporter_id", sa.String(), primary_key=True),
        sa.Column("market", sa.String(), primary_key=True),
        sa.Column("obligation", sa.String(), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("figure", sa.JSON(), nullable=False),
        sa.Column("met", sa.Boolean(), nullable=True),
        sa.Column("met_all_day", sa.Boolean(), nullable=True),
        sa.Column("first_as_of", INSTANT, nullable=False),
        sa.Column("last_as_of", INSTANT, nullable=False),
        sa.Column("policy_version", sa.String(), nullable=False),
        sa.Column("carried", sa.Boolean(), nullable=False),
    )

    op.create_table(
        "policy_versions",
        sa.Column("version", sa.String(), primary_key=True),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
    )

    op.create_table(
        "registrations",
        sa.Column("exporter_id", sa.String(), primary_key=True),
        sa.Column("registration", sa.JSON(), nullable=False),
        sa.Column("origin", sa.String(), nullable=False),
    )


def downgrade() -> None:
    for table in ("registrations", "policy_versions", "daily_figures", "compliance_latest", "alerts",
                  "chain_heads", "alert_repeats", "alert_transitions"):
        op.drop_table(table)
