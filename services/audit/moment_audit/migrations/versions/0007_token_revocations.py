"""token revocations: identity's PrincipalTokensRevoked and SubjectErased, per principal

One row per principal whose tokens identity revoked (moment_runtime.revocations). Each part of a
rule only ever gets stricter. The query API looks a token's principal up here before answering.
The service role needs SELECT, INSERT and UPDATE. Dropping the table would let revoked tokens that
have not yet expired read access histories again until the feed is replayed.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "revocations",
        sa.Column("principal_id", sa.String(length=128), nullable=False),
        sa.Column("min_session_version", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("issued_before", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("permanent", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("principal_id", name=op.f("pk_revocations")),
    )


def downgrade() -> None:
    op.drop_table("revocations")
