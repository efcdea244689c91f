"""deployments as the deployment manual has them: a chosen backend and its version, engine
arguments, the auto-restart switch, stopped and kept, and downloads that deploy what they bring

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
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("backend_version", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("args", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("restart", sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.add_column(sa.Column("stopped", sa.Boolean(), nullable=False, server_default=sa.false()))
    # the backend recorded so far was the one chosen for the model: from now on it is what the
    # user asked for, and "" lets the registry choose
    op.execute("UPDATE deployments SET backend = ''")
    with op.batch_alter_table("downloads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deploy", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("downloads", schema=None) as batch_op:
        batch_op.drop_column("deploy")
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_column("stopped")
        batch_op.drop_column("restart")
        batch_op.drop_column("args")
        batch_op.drop_column("backend_version")
