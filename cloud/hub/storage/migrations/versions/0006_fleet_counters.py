"""fleet counters: cumulative Prometheus counters (inferences, errors, the merged latency
histogram per model version, the MQTT bridge's counters) shared by every hub process and
kept across restarts

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fleet_counters",
        sa.Column("family", sa.String(length=32), nullable=False),
        sa.Column("model_name", sa.String(length=64), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("family", "model_name", "model_version", "label"),
    )


def downgrade() -> None:
    op.drop_table("fleet_counters")
