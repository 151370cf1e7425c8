"""guards pinned and named: the append-only triggers and the agreement function, as verify expects

Verify now reads the live catalog and names each trigger, constraint or grant the append-only
promise rests on that is not in place (adapters/guarantees.py). The expected triggers and
trigger functions are the constants below, and this revision (re)creates exactly them, so what
verify compares against is what the database was given.

On PostgreSQL every function the guards call runs with a pinned `search_path` (pg_catalog, the
tables' schema, pg_temp last) and `audit_document_agrees` names pg_catalog's own `=`, casts and
functions: a session whose search_path puts a schema with its own `=` (or a temporary
`audit_retention_horizons`) in front can no longer make a guard pass. The pinned path stops
PostgreSQL inlining the CHECK's function: 100,000 rows took 1.07-1.26 s inlined and 1.12-1.13 s
pinned (2026-12-06, no measurable difference). PUBLIC loses UPDATE, DELETE and TRUNCATE on the
three append-only tables again.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 12:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RECORDS = "audit_records"
CHECKPOINTS = "audit_checkpoints"
HORIZONS = "audit_retention_horizons"
APPEND_ONLY = (RECORDS, CHECKPOINTS, HORIZONS)

# Each trigger function's body (pg_proc.prosrc), as 0005 wrote it.
PG_FUNCTIONS: dict[str, str] = {
    "audit_reject_change": """
BEGIN
    RAISE EXCEPTION 'audit store is append-only: % on % rejected', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
""",
    "audit_delete_below_horizon": """
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
""",
    "audit_admit_horizon": """
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
""",
}

# (name, table, events, level, function): every PostgreSQL trigger fires BEFORE.
PG_TRIGGERS: tuple[tuple[str, str, tuple[str, ...], str, str], ...] = (
    (f"{RECORDS}_append_only", RECORDS, ("UPDATE",), "ROW", "audit_reject_change"),
    (
        f"{RECORDS}_delete_below_horizon",
        RECORDS,
        ("DELETE",),
        "ROW",
        "audit_delete_below_horizon",
    ),
    (f"{RECORDS}_no_truncate", RECORDS, ("TRUNCATE",), "STATEMENT", "audit_reject_change"),
    (f"{CHECKPOINTS}_append_only", CHECKPOINTS, ("UPDATE", "DELETE"), "ROW", "audit_reject_change"),
    (f"{CHECKPOINTS}_no_truncate", CHECKPOINTS, ("TRUNCATE",), "STATEMENT", "audit_reject_change"),
    (f"{HORIZONS}_append_only", HORIZONS, ("UPDATE", "DELETE"), "ROW", "audit_reject_change"),
    (f"{HORIZONS}_no_truncate", HORIZONS, ("TRUNCATE",), "STATEMENT", "audit_reject_change"),
    (f"{HORIZONS}_admit", HORIZONS, ("INSERT",), "ROW", "audit_admit_horizon"),
)


def _abort(message: str) -> str:
    return f"BEGIN SELECT RAISE(ABORT, '{message}'); END"


_NO_UPDATE = _abort("audit store is append-only: UPDATE rejected")
_NO_DELETE = _abort("audit store is append-only: DELETE rejected")

# name -> its exact SQL (sqlite_master.sql), as 0003-0005 wrote them.
SQLITE_TRIGGERS: dict[str, str] = {
    f"{RECORDS}_no_update": f"CREATE TRIGGER {RECORDS}_no_update BEFORE UPDATE ON {RECORDS} "
    + _NO_UPDATE,
    f"{RECORDS}_no_delete": f"CREATE TRIGGER {RECORDS}_no_delete BEFORE DELETE ON {RECORDS} "
    "WHEN NOT EXISTS (SELECT 1 FROM audit_retention_horizons h "
    "WHERE h.chain_partition = OLD.chain_partition AND h.seq >= OLD.seq) "
    + _abort("audit store is append-only: DELETE above the retention horizon rejected"),
    f"{CHECKPOINTS}_no_update": f"CREATE TRIGGER {CHECKPOINTS}_no_update BEFORE UPDATE "
    f"ON {CHECKPOINTS} " + _NO_UPDATE,
    f"{CHECKPOINTS}_no_delete": f"CREATE TRIGGER {CHECKPOINTS}_no_delete BEFORE DELETE "
    f"ON {CHECKPOINTS} " + _NO_DELETE,
    f"{HORIZONS}_no_update": f"CREATE TRIGGER {HORIZONS}_no_update BEFORE UPDATE ON {HORIZONS} "
    + _NO_UPDATE,
    f"{HORIZONS}_no_delete": f"CREATE TRIGGER {HORIZONS}_no_delete BEFORE DELETE ON {HORIZONS} "
    + _NO_DELETE,
    f"{HORIZONS}_on_checkpoint": f"CREATE TRIGGER {HORIZONS}_on_checkpoint BEFORE INSERT "
    f"ON {HORIZONS} WHEN NOT EXISTS (SELECT 1 FROM audit_checkpoints c "
    "WHERE c.chain_partition = NEW.chain_partition AND c.seq = NEW.seq AND c.hash = NEW.hash) "
    + _abort("retention horizon rejected: no checkpoint has its seq and hash"),
    f"{HORIZONS}_forward": f"CREATE TRIGGER {HORIZONS}_forward BEFORE INSERT ON {HORIZONS} "
    "WHEN NOT NOT EXISTS (SELECT 1 FROM audit_retention_horizons h "
    "WHERE h.chain_partition = NEW.chain_partition AND h.seq >= NEW.seq) "
    + _abort("retention horizon rejected: horizons only move forward"),
}

# audit_document_agrees, pinned (adapters/agreement.py FUNCTION_SQL; a unit test keeps them
# equal). Not STRICT: a NULL argument (a NULL purpose) must be compared, not make the CHECK pass.
PG_AGREES = r"""CREATE OR REPLACE FUNCTION audit_document_agrees(document text, source text, event_id text, action text, actor_id text, actor_role text, subject_id text, fields json, purpose text, outcome text, occurred_at timestamptz, request_id text, trace_id text, source_ref text, producer_seq bigint, chain_partition integer, seq bigint, prev_hash text) RETURNS boolean LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
SELECT coalesce(CAST(document AS pg_catalog.jsonb) OPERATOR(pg_catalog.=) pg_catalog.jsonb_build_object(
    'source', source,
    'event_id', event_id,
    'action', action,
    'actor_id', actor_id,
    'actor_role', actor_role,
    'subject_id', subject_id,
    'fields', CAST(fields AS pg_catalog.jsonb),
    'purpose', purpose,
    'outcome', outcome,
    'occurred_at', pg_catalog.to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
    'request_id', request_id,
    'trace_id', trace_id,
    'source_ref', source_ref,
    'producer_seq', producer_seq,
    'partition', chain_partition,
    'seq', seq,
    'prev_hash', prev_hash
), false)
$$"""
# 0004's, for the downgrade.
PG_AGREES_UNPINNED = r"""CREATE OR REPLACE FUNCTION audit_document_agrees(document text, source text, event_id text, action text, actor_id text, actor_role text, subject_id text, fields json, purpose text, outcome text, occurred_at timestamptz, request_id text, trace_id text, source_ref text, producer_seq bigint, chain_partition integer, seq bigint, prev_hash text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
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
$$"""


def pinned_path(schema: str) -> str:
    """The search_path every trigger function runs with: its tables' schema, never pg_temp's."""
    return f"pg_catalog, {schema}, pg_temp"


def pg_function_sql(name: str, schema: str) -> str:
    return (
        f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql "
        f"SET search_path = {pinned_path(schema)} AS $${PG_FUNCTIONS[name]}$$"
    )


def pg_trigger_sql(name: str, table: str, events: tuple[str, ...], level: str, fn: str) -> str:
    return (
        f"CREATE TRIGGER {name} BEFORE {' OR '.join(events)} ON {table} "
        f"FOR EACH {level} EXECUTE FUNCTION {fn}()"
    )


def _schema() -> str:
    found = op.get_bind().execute(
        sa.text("SELECT quote_ident(current_schema())")
    ).scalar_one()
    return str(found)


def _postgresql() -> None:
    schema = _schema()
    op.execute(PG_AGREES)
    for name in PG_FUNCTIONS:
        op.execute(pg_function_sql(name, schema))
    for name, table, events, level, fn in PG_TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        op.execute(pg_trigger_sql(name, table, events, level, fn))
    for table in APPEND_ONLY:
        op.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM PUBLIC")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _postgresql()
        return
    for name, sql in SQLITE_TRIGGERS.items():
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute(sql)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(PG_AGREES_UNPINNED)
    for name in PG_FUNCTIONS:
        op.execute(f"ALTER FUNCTION {name}() RESET search_path")
