"""chained checkpoints (number, prev, signed partition set) and ingest MACs on records

A checkpoint now signs its per-partition number, the digest of the partition's previous
checkpoint and the set of partitions the store holds, so removing one breaks the chain and a
vanished partition is named. Heartbeats sign an unchanged head again, so (partition, seq) is no
longer unique: (partition, number) is. Checkpoints stored before this revision keep a NULL number
and are verified as before (not chained).

`record_mac` is audit's HMAC (key in Vault) over each record's hash, written at ingest: the
checkpointer signs only records that carry a valid one, so a row slipped into the table by
someone without the key is refused and alerted, never signed.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None



def _lift_sqlite_triggers() -> list[str]:
    """SQLite rebuilds audit_checkpoints to change its constraints: that drops its own triggers,
    and a rename fails while another table's trigger names it. Lift every trigger that mentions
    the table and return their SQL, to be put back as they were."""
    if op.get_bind().dialect.name != "sqlite":
        return []
    rows = op.get_bind().execute(
        sa.text(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
            "AND (tbl_name = 'audit_checkpoints' OR sql LIKE '%audit_checkpoints%')"
        )
    )
    lifted = list(rows)
    for name, _ in lifted:
        op.execute(f'DROP TRIGGER "{name}"')
    return [str(sql) for _, sql in lifted]


def _restore(triggers: list[str]) -> None:
    for sql in triggers:
        op.execute(sql)


def upgrade() -> None:
    triggers = _lift_sqlite_triggers()
    with op.batch_alter_table("audit_checkpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("number", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("prev", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("partitions", sa.Text(), nullable=True))
        batch_op.drop_constraint("uq_audit_checkpoints_chain_seq", type_="unique")
        batch_op.create_unique_constraint(
            "uq_audit_checkpoints_chain_number", ["chain_partition", "number"]
        )
    _restore(triggers)
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("record_mac", sa.String(length=80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.drop_column("record_mac")
    triggers = _lift_sqlite_triggers()
    with op.batch_alter_table("audit_checkpoints", schema=None) as batch_op:
        batch_op.drop_constraint("uq_audit_checkpoints_chain_number", type_="unique")
        batch_op.create_unique_constraint("uq_audit_checkpoints_chain_seq", ["chain_partition", "seq"])
        batch_op.drop_column("partitions")
        batch_op.drop_column("prev")
        batch_op.drop_column("number")
    _restore(triggers)
