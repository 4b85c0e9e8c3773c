"""datasets and champion checks: frozen dataset versions of labeled field samples (each
sample's label and file as they were), and the stored comparisons of a candidate version
against the version the devices run

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dataset_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=80), nullable=False),
        sa.Column("filter", sa.JSON(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("model_name", sa.String(length=64), nullable=True),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", "version", name="uq_dataset_versions_name_version"),
    )
    op.create_table(
        "dataset_samples",
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("sample_id", sa.String(length=32), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("label", sa.String(length=256), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("file", sa.String(length=512), nullable=False),
        sa.Column("features", sa.JSON(), nullable=True),
        sa.Column("captured_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["dataset_versions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("dataset_id", "sample_id"),
    )
    op.create_index("ix_dataset_samples_sample_id", "dataset_samples", ["sample_id"])
    op.create_table(
        "model_comparisons",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_name", sa.String(length=64), nullable=False),
        sa.Column("candidate_version", sa.Integer(), nullable=False),
        sa.Column("champion_version", sa.Integer(), nullable=True),
        sa.Column("context", sa.String(length=16), nullable=False),
        sa.Column("rollout_id", sa.String(length=32), nullable=True),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("forced", sa.Boolean(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_model_comparisons_model", "model_comparisons", ["model_name", "candidate_version"]
    )
    op.create_index("ix_model_comparisons_rollout_id", "model_comparisons", ["rollout_id"])


def downgrade() -> None:
    op.drop_index("ix_model_comparisons_rollout_id", table_name="model_comparisons")
    op.drop_index("ix_model_comparisons_model", table_name="model_comparisons")
    op.drop_table("model_comparisons")
    op.drop_index("ix_dataset_samples_sample_id", table_name="dataset_samples")
    op.drop_table("dataset_samples")
    op.drop_table("dataset_versions")
