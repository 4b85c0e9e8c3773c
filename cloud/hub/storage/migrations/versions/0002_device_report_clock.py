"""device report clock: which report set the device's model fields, so an older message
written later (batching, replay, several workers) never moves a device back in time

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("model_ts", sa.Float(), nullable=True))
        batch.add_column(sa.Column("model_seq", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("model_src", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("model_src")
        batch.drop_column("model_seq")
        batch.drop_column("model_ts")
