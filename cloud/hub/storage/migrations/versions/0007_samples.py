"""samples: inputs devices captured and uploaded (the file sits in the data dir, the row
holds the prediction and the operator's label) and every label change; devices.capture,
the capture policy the hub last sent

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "samples",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("model_name", sa.String(length=64), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("predicted", sa.String(length=256), nullable=False),
        sa.Column("predicted_index", sa.Integer(), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("scores", sa.JSON(), nullable=True),
        sa.Column("known_label", sa.String(length=256), nullable=True),
        sa.Column("shadow", sa.JSON(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("media_type", sa.String(length=64), nullable=False),
        sa.Column("features", sa.JSON(), nullable=True),
        sa.Column("array", sa.JSON(), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("captured_at", sa.Float(), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("label", sa.String(length=256), nullable=True),
        sa.Column("labeled_by", sa.String(length=128), nullable=True),
        sa.Column("labeled_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_samples_device_received", "samples", ["device_id", "received_at"])
    op.create_index("ix_samples_model", "samples", ["model_name", "model_version"])
    op.create_index("ix_samples_received", "samples", ["received_at"])
    op.create_index("ix_samples_label", "samples", ["label"])
    op.create_table(
        "sample_labels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sample_id", sa.String(length=32), nullable=False),
        sa.Column("label", sa.String(length=256), nullable=True),
        sa.Column("previous", sa.String(length=256), nullable=True),
        sa.Column("by", sa.String(length=128), nullable=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["sample_id"], ["samples.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sample_labels_sample_id", "sample_labels", ["sample_id"])
    # the capture policy the hub last sent the device (PUT /api/v1/devices/<id>/capture)
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("capture", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("capture")
    op.drop_index("ix_sample_labels_sample_id", table_name="sample_labels")
    op.drop_table("sample_labels")
    for name in ("ix_samples_label", "ix_samples_received", "ix_samples_model",
                 "ix_samples_device_received"):  # fmt: skip
        op.drop_index(name, table_name="samples")
    op.drop_table("samples")
