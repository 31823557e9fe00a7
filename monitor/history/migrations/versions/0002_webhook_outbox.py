"""The webhook outbox: the configured webhooks (ids and exporters) and one delivery row per webhook and
alert transition.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-20
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# written out rather than imported from the models, so this revision stays as it was when the models change
INSTANT = sa.DateTime(timezone=True)


revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("webhook_id", sa.String(), primary_key=True),
        sa.Column("exporters", sa.JSON(), nullable=False),
        sa.Column("configured_at", INSTANT, nullable=False),
    )

    op.create_table(
        "webhook_deliveries",
        sa.Column("delivery_id", sa.String(), primary_key=True),
        sa.Column("webhook_id", sa.String(), nullable=False),
        sa.Column("alert_id", sa.String(), nullable=False),
        sa.Column("exporter_id", sa.String(), nullable=False),
        sa.Column("transition_seq", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", INSTANT, nullable=True),
        sa.Column("last_attempt_at", INSTANT, nullable=True),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("delivered_at", INSTANT, nullable=True),
        sa.Column("claimed_by", sa.String(), nullable=True),
        sa.Column("claimed_until", INSTANT, nullable=True),
        sa.UniqueConstraint("webhook_id", "transition_seq", name="uq_webhook_deliveries_transition"),
    )
    op.create_index("ix_webhook_deliveries_status_next", "webhook_deliveries", ["status", "next_attempt_at"])
    op.create_index("ix_webhook_deliveries_alert", "webhook_deliveries", ["webhook_id", "alert_id", "transition_seq"])
    op.create_index("ix_webhook_deliveries_seq", "webhook_deliveries", ["transition_seq", "webhook_id"])


def downgrade() -> None:
    for table in ("webhook_deliveries", "webhooks"):
        op.drop_table(table)
