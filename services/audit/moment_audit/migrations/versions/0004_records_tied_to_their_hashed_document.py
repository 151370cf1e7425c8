"""records tied to their hashed document

Each audit record now stores `document`, the exact canonical JSON its record_hash covers (with
the producer's sequence number, `producer_seq`, now in it), and a CHECK constraint makes the
database refuse any row whose query columns disagree with that document, so `verify` hashes
stored bytes without re-encoding anything. (Generated columns would give the same guarantee, but
PostgreSQL parses the document once per generated column: seventeen parses, about 140 us a row,
where the one function below parses it once.)

The table is recreated: this needs it to be empty (no release has shipped with 0003's format;
a dev store is throwaway: drop its database or `moment-audit migrate` a fresh one). The
append-only triggers of 0003 are re-created on the new table under the same names.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 07:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "audit_records"
CONSTRAINT = "ck_audit_records_document_agrees"

# Not STRICT: a NULL argument (a NULL purpose) must be compared, not make the CHECK pass.
PG_AGREES = r"""
CREATE OR REPLACE FUNCTION audit_document_agrees(document text, source text, event_id text, action text, actor_id text, actor_role text, subject_id text, fields json, purpose text, outcome text, occurred_at timestamptz, request_id text, trace_id text, source_ref text, producer_seq bigint, chain_partition integer, seq bigint, prev_hash text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
SELECT coalesce(document::jsonb = jsonb_build_object(
    'source', source,
    'event_id', event_id,
    'action', action,
    'actor_id', actor_id,
    'actor_role', actor_role,
    'subject_id', subject_id,
    'fields', fields::jsonb,
    'purpose', purpose,
    'outcome', outcome,
    'occurred_at', to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
    'request_id', request_id,
    'trace_id', trace_id,
    'source_ref', source_ref,
    'producer_seq', producer_seq,
    'partition', chain_partition,
    'seq', seq,
    'prev_hash', prev_hash
), false)
$$
"""
PG_AGREES_NAME = (
    "audit_document_agrees(text, text, text, text, text, text, text, json, text, text, "
    "timestamptz, text, text, text, bigint, integer, bigint, text)"
)
PG_CHECK = "audit_document_agrees(document, source, event_id, action, actor_id, actor_role, subject_id, fields, purpose, outcome, occurred_at, request_id, trace_id, source_ref, producer_seq, chain_partition, seq, prev_hash)"
SQLITE_CHECK = (
    "source IS json_extract(document, '$.source') AND "
    "event_id IS json_extract(document, '$.event_id') AND "
    "action IS json_extract(document, '$.action') AND "
    "actor_id IS json_extract(document, '$.actor_id') AND "
    "actor_role IS json_extract(document, '$.actor_role') AND "
    "subject_id IS json_extract(document, '$.subject_id') AND "
    "json(fields) IS json_extract(document, '$.fields') AND "
    "purpose IS json_extract(document, '$.purpose') AND "
    "outcome IS json_extract(document, '$.outcome') AND "
    "occurred_at IS (strftime('%Y-%m-%d %H:%M:%S', json_extract(document, '$.occurred_at')) || substr(json_extract(document, '$.occurred_at'), 20, 7)) AND "
    "request_id IS json_extract(document, '$.request_id') AND "
    "trace_id IS json_extract(document, '$.trace_id') AND "
    "source_ref IS json_extract(document, '$.source_ref') AND "
    "producer_seq IS json_extract(document, '$.producer_seq') AND "
    "chain_partition IS json_extract(document, '$.partition') AND "
    "seq IS json_extract(document, '$.seq') AND "
    "prev_hash IS json_extract(document, '$.prev_hash') AND "
    "json_remove(document, '$.source', '$.event_id', '$.action', '$.actor_id', '$.actor_role', '$.subject_id', '$.fields', '$.purpose', '$.outcome', '$.occurred_at', '$.request_id', '$.trace_id', '$.source_ref', '$.producer_seq', '$.partition', '$.seq', '$.prev_hash') IS '{}'"
)

PG_REJECT = """
CREATE OR REPLACE FUNCTION audit_reject_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit store is append-only: % on % rejected', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql
"""

# (column, type, nullable): the query columns, each tied to the document by the CHECK.
TIED: tuple[tuple[str, sa.types.TypeEngine, bool], ...] = (
    ("source", sa.String(256), False),
    ("event_id", sa.String(128), False),
    ("action", sa.String(32), False),
    ("actor_id", sa.String(128), False),
    ("actor_role", sa.String(64), False),
    ("subject_id", sa.String(128), False),
    ("fields", sa.JSON(), False),
    ("purpose", sa.String(64), True),
    ("outcome", sa.String(16), False),
    ("occurred_at", sa.DateTime(timezone=True), False),
    ("request_id", sa.String(128), True),
    ("trace_id", sa.String(32), True),
    ("source_ref", sa.String(80), True),
    ("producer_seq", sa.BigInteger(), True),
    ("chain_partition", sa.Integer(), False),
    ("seq", sa.BigInteger(), False),
    ("prev_hash", sa.String(64), False),
)

# 0003's columns, for the downgrade.
PLAIN: tuple[tuple[str, sa.types.TypeEngine, bool], ...] = (
    ("source", sa.String(256), False),
    ("event_id", sa.String(128), False),
    ("action", sa.String(32), False),
    ("actor_id", sa.String(128), False),
    ("actor_role", sa.String(64), False),
    ("subject_id", sa.String(128), False),
    ("fields", sa.JSON(), False),
    ("purpose", sa.String(64), True),
    ("outcome", sa.String(16), False),
    ("occurred_at", sa.DateTime(timezone=True), False),
    ("request_id", sa.String(128), True),
    ("trace_id", sa.String(32), True),
    ("kafka_partition", sa.Integer(), False),
    ("kafka_offset", sa.BigInteger(), False),
    ("received_at", sa.DateTime(timezone=True), False),
    ("source_ref", sa.String(80), True),
    ("chain_partition", sa.Integer(), False),
    ("seq", sa.BigInteger(), False),
    ("prev_hash", sa.String(64), False),
    ("record_hash", sa.String(64), False),
)


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _require_empty() -> None:
    if op.get_bind().execute(sa.text(f"SELECT 1 FROM {TABLE} LIMIT 1")).first() is not None:
        raise RuntimeError(
            f"revision 0004 recreates {TABLE} in another record format and needs it empty, "
            "but it holds records: migrate a fresh database instead"
        )


def _protect() -> None:
    if _postgres():
        op.execute(PG_REJECT)
        op.execute(
            f"CREATE TRIGGER {TABLE}_append_only BEFORE UPDATE OR DELETE ON {TABLE} "
            "FOR EACH ROW EXECUTE FUNCTION audit_reject_change()"
        )
        # TRUNCATE fires no row trigger: it needs a statement trigger of its own.
        op.execute(
            f"CREATE TRIGGER {TABLE}_no_truncate BEFORE TRUNCATE ON {TABLE} "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_reject_change()"
        )
        op.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON {TABLE} FROM PUBLIC")
        return
    for verb in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER {TABLE}_no_{verb.lower()} BEFORE {verb} ON {TABLE} "
            f"BEGIN SELECT RAISE(ABORT, 'audit store is append-only: {verb} rejected'); END"
        )


def _drop() -> None:
    """Drop the (empty) table with its triggers and indexes."""
    _require_empty()
    if _postgres():
        op.execute(f"DROP TRIGGER IF EXISTS {TABLE}_append_only ON {TABLE}")
        op.execute(f"DROP TRIGGER IF EXISTS {TABLE}_no_truncate ON {TABLE}")
    else:
        for verb in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {TABLE}_no_{verb}")
    op.drop_table(TABLE)


def _id() -> sa.Column:
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False)


def upgrade() -> None:
    _drop()
    if _postgres():
        op.execute(PG_AGREES)
    op.create_table(
        TABLE,
        _id(),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("record_hash", sa.String(length=64), nullable=False),
        *(sa.Column(name, type_, nullable=nullable) for name, type_, nullable in TIED),
        sa.Column("kafka_partition", sa.Integer(), nullable=False),
        sa.Column("kafka_offset", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_records")),
        sa.UniqueConstraint("source", "event_id", name="uq_audit_records_source_event"),
        sa.UniqueConstraint("chain_partition", "seq", name="uq_audit_records_chain_seq"),
        sa.CheckConstraint(PG_CHECK if _postgres() else SQLITE_CHECK, name=CONSTRAINT),
    )
    op.create_index(op.f("ix_audit_records_subject_id"), TABLE, ["subject_id"], unique=False)
    op.create_index(
        "ix_audit_records_source_producer_seq", TABLE, ["source", "producer_seq"], unique=False
    )
    _protect()


def downgrade() -> None:
    _drop()
    if _postgres():
        op.execute(f"DROP FUNCTION IF EXISTS {PG_AGREES_NAME}")
    op.create_table(
        TABLE,
        _id(),
        *(sa.Column(name, type_, nullable=nullable) for name, type_, nullable in PLAIN),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_records")),
        sa.UniqueConstraint("source", "event_id", name="uq_audit_records_source_event"),
        sa.UniqueConstraint("chain_partition", "seq", name="uq_audit_records_chain_seq"),
    )
    op.create_index(op.f("ix_audit_records_subject_id"), TABLE, ["subject_id"], unique=False)
    _protect()
