"""instances: ids never reused (one log per instance start), the node instead of a pid;
deployments: their own environment variables

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


def _instances(pid: bool) -> None:
    """Instances live only while a server runs (it clears them at start), so the table is made
    anew rather than altered: SQLite needs AUTOINCREMENT from the table's creation."""
    where = (
        sa.Column("pid", sa.Integer(), nullable=True)
        if pid
        else sa.Column("node", sa.String(128), nullable=True)
    )
    op.create_table(
        "instances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        where,
        sa.Column("url", sa.String(length=256), nullable=True),
        sa.Column("starts", sa.Integer(), nullable=False),
        sa.Column("restarts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("history", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["deployment_id"], ["deployments.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=not pid,
    )
    op.create_index("ix_instances_deployment_id", "instances", ["deployment_id"], unique=False)


def upgrade() -> None:
    op.drop_index("ix_instances_deployment_id", table_name="instances")
    op.drop_table("instances")
    _instances(pid=False)
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("env", sa.JSON(), nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_column("env")
    op.drop_index("ix_instances_deployment_id", table_name="instances")
    op.drop_table("instances")
    _instances(pid=True)
