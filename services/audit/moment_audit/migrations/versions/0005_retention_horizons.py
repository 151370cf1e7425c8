"""retention horizons

`audit_retention_horizons` records, per partition, the seq up to which records were pruned: it is
append-only (UPDATE and DELETE rejected, TRUNCATE too on PostgreSQL), and an insert is admitted
only when it rests on a checkpoint of the same partition, seq and hash and moves that partition's
horizon forward. The DELETE trigger on `audit_records` (0003/0004's) is replaced by one that lets
through only records at or below their partition's highest horizon; UPDATE and TRUNCATE stay
rejected. Who may DELETE at all is the retention role's business (adapters/db_roles.py).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 06:57:15.994523
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RECORDS = "audit_records"
HORIZONS = "audit_retention_horizons"

PG_REJECT = """
CREATE OR REPLACE FUNCTION audit_reject_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit store is append-only: % on % rejected', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql
"""

PG_DELETE_BELOW_HORIZON = """
CREATE OR REPLACE FUNCTION audit_delete_below_horizon() RETURNS trigger AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM audit_retention_horizons h
        WHERE h.chain_partition = OLD.chain_partition AND h.seq >= OLD.seq
    ) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit store is append-only: DELETE above the retention horizon rejected'
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql
"""

PG_ADMIT_HORIZON = """
CREATE OR REPLACE FUNCTION audit_admit_horizon() RETURNS trigger AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM audit_checkpoints c
        WHERE c.chain_partition = NEW.chain_partition AND c.seq = NEW.seq AND c.hash = NEW.hash
    ) THEN
        RAISE EXCEPTION 'retention horizon rejected: no checkpoint has its seq and hash'
            USING ERRCODE = 'check_violation';
    END IF;
    IF EXISTS (
        SELECT 1 FROM audit_retention_horizons h
        WHERE h.chain_partition = NEW.chain_partition AND h.seq >= NEW.seq
    ) THEN
        RAISE EXCEPTION 'retention horizon rejected: horizons only move forward'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql
"""

SQLITE_BELOW_HORIZON = (
    "EXISTS (SELECT 1 FROM audit_retention_horizons h "
    "WHERE h.chain_partition = OLD.chain_partition AND h.seq >= OLD.seq)"
)
SQLITE_ON_CHECKPOINT = (
    "EXISTS (SELECT 1 FROM audit_checkpoints c WHERE c.chain_partition = NEW.chain_partition "
    "AND c.seq = NEW.seq AND c.hash = NEW.hash)"
)
SQLITE_FORWARD = (
    "NOT EXISTS (SELECT 1 FROM audit_retention_horizons h "
    "WHERE h.chain_partition = NEW.chain_partition AND h.seq >= NEW.seq)"
)


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _sqlite_reject(name: str, when: str, table: str, condition: str, message: str) -> None:
    op.execute(
        f"CREATE TRIGGER {name} BEFORE {when} ON {table} WHEN {condition} "
        f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
    )


def _protect_horizons() -> None:
    if _postgres():
        op.execute(PG_REJECT)
        op.execute(PG_ADMIT_HORIZON)
        op.execute(
            f"CREATE TRIGGER {HORIZONS}_append_only BEFORE UPDATE OR DELETE ON {HORIZONS} "
            "FOR EACH ROW EXECUTE FUNCTION audit_reject_change()"
        )
        op.execute(
            f"CREATE TRIGGER {HORIZONS}_no_truncate BEFORE TRUNCATE ON {HORIZONS} "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_reject_change()"
        )
        op.execute(
            f"CREATE TRIGGER {HORIZONS}_admit BEFORE INSERT ON {HORIZONS} "
            "FOR EACH ROW EXECUTE FUNCTION audit_admit_horizon()"
        )
        op.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON {HORIZONS} FROM PUBLIC")
        return
    for verb in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER {HORIZONS}_no_{verb.lower()} BEFORE {verb} ON {HORIZONS} "
            f"BEGIN SELECT RAISE(ABORT, 'audit store is append-only: {verb} rejected'); END"
        )
    _sqlite_reject(
        f"{HORIZONS}_on_checkpoint",
        "INSERT",
        HORIZONS,
        f"NOT {SQLITE_ON_CHECKPOINT}",
        "retention horizon rejected: no checkpoint has its seq and hash",
    )
    _sqlite_reject(
        f"{HORIZONS}_forward",
        "INSERT",
        HORIZONS,
        f"NOT {SQLITE_FORWARD}",
        "retention horizon rejected: horizons only move forward",
    )


def _guard_record_deletes() -> None:
    """Replace "no DELETE" on records with "no DELETE above the partition's horizon"."""
    if _postgres():
        op.execute(PG_DELETE_BELOW_HORIZON)
        op.execute(f"DROP TRIGGER IF EXISTS {RECORDS}_append_only ON {RECORDS}")
        op.execute(
            f"CREATE TRIGGER {RECORDS}_append_only BEFORE UPDATE ON {RECORDS} "
            "FOR EACH ROW EXECUTE FUNCTION audit_reject_change()"
        )
        op.execute(
            f"CREATE TRIGGER {RECORDS}_delete_below_horizon BEFORE DELETE ON {RECORDS} "
            "FOR EACH ROW EXECUTE FUNCTION audit_delete_below_horizon()"
        )
        return
    # Same name as before, so whatever drops or checks it by name still finds it.
    op.execute(f"DROP TRIGGER IF EXISTS {RECORDS}_no_delete")
    _sqlite_reject(
        f"{RECORDS}_no_delete",
        "DELETE",
        RECORDS,
        f"NOT {SQLITE_BELOW_HORIZON}",
        "audit store is append-only: DELETE above the retention horizon rejected",
    )


def _forbid_record_deletes() -> None:
    """0004's triggers again: no DELETE on records at all."""
    if _postgres():
        op.execute(f"DROP TRIGGER IF EXISTS {RECORDS}_delete_below_horizon ON {RECORDS}")
        op.execute(f"DROP TRIGGER IF EXISTS {RECORDS}_append_only ON {RECORDS}")
        op.execute(
            f"CREATE TRIGGER {RECORDS}_append_only BEFORE UPDATE OR DELETE ON {RECORDS} "
            "FOR EACH ROW EXECUTE FUNCTION audit_reject_change()"
        )
        op.execute("DROP FUNCTION IF EXISTS audit_delete_below_horizon()")
        return
    op.execute(f"DROP TRIGGER IF EXISTS {RECORDS}_no_delete")
    op.execute(
        f"CREATE TRIGGER {RECORDS}_no_delete BEFORE DELETE ON {RECORDS} "
        "BEGIN SELECT RAISE(ABORT, 'audit store is append-only: DELETE rejected'); END"
    )


def upgrade() -> None:
    op.create_table(
        HORIZONS,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("chain_partition", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("cutoff", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pruned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("records", sa.BigInteger(), nullable=False),
        sa.Column("signature", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_retention_horizons")),
        sa.UniqueConstraint(
            "chain_partition", "seq", name="uq_audit_retention_horizons_chain_seq"
        ),
    )
    _protect_horizons()
    _guard_record_deletes()


def downgrade() -> None:
    # Records pruned under a horizon stay gone: the downgraded verify would report them DELETED.
    _forbid_record_deletes()
    op.drop_table(HORIZONS)
    if _postgres():
        op.execute("DROP FUNCTION IF EXISTS audit_admit_horizon()")
