"""watch progress: per-producer contiguous marks and how far the record scan has looked

Derived state of the background watch (service/watch.py). `audit_producer_marks` holds, per
CloudEvents source, the number up to which every `producer_seq` is stored or was reported
missing; `audit_watch_progress` the record id up to which every record was checked for repeated
numbers. The service role needs SELECT, INSERT and UPDATE on both. Dropping them is harmless
except that gaps already reported could be reported again.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_producer_marks",
        sa.Column("source", sa.String(length=256), nullable=False),
        sa.Column("contiguous", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_audit_producer_marks")),
    )
    op.create_table(
        "audit_watch_progress",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_audit_watch_progress")),
    )


def downgrade() -> None:
    op.drop_table("audit_watch_progress")
    op.drop_table("audit_producer_marks")
