"""kpis clock columns: the run and seq of the telemetry that set a device's latest KPIs, so
the ingest path compares device time without decoding the KPI JSON of every device it
touches

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("kpis_boot", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("kpis_seq", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("kpis_seq")
        batch.drop_column("kpis_boot")
