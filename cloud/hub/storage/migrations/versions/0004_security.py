"""security: server-side web sessions, login throttling, token revocation, per-device MQTT
credentials (stored as Mosquitto dynamic-security PBKDF2 hashes), re-bind permission on
enrollment tokens, and the hub's own secrets (broker account, command signing key)

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("revoked", sa.Float(), nullable=True))
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("revoked", sa.Float(), nullable=True))
        batch.add_column(sa.Column("mqtt_secret", sa.JSON(), nullable=True))
    with op.batch_alter_table("enrollment_tokens") as batch:
        batch.add_column(
            sa.Column("rebind", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "web_sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("last_seen", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id_hash"),
    )
    op.create_index("ix_web_sessions_user_id", "web_sessions", ["user_id"])
    op.create_table(
        "login_failures",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("first", sa.Float(), nullable=False),
        sa.Column("locked_until", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "hub_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("hub_secrets")
    op.drop_table("login_failures")
    op.drop_index("ix_web_sessions_user_id", table_name="web_sessions")
    op.drop_table("web_sessions")
    with op.batch_alter_table("enrollment_tokens") as batch:
        batch.drop_column("rebind")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("mqtt_secret")
        batch.drop_column("revoked")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("revoked")
