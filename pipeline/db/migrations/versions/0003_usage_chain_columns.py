"""Usage records name the chain, version and step a model call was made for.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable columns with no default: an ALTER TABLE ADD COLUMN on SQLite and PostgreSQL alike.
    op.add_column("usage_records", sa.Column("chain_id", sa.String(64), nullable=True))
    op.add_column("usage_records", sa.Column("chain_version", sa.Integer(), nullable=True))
    op.add_column("usage_records", sa.Column("chain_step", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("chain_step")
        batch.drop_column("chain_version")
        batch.drop_column("chain_id")
