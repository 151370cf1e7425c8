"""The audit store's PostgreSQL roles: the service appends, retention prunes, analysts read.

`moment_audit_writer` (the running service) holds SELECT and INSERT on the append-only tables and
nothing more: no UPDATE, DELETE or TRUNCATE, and, owning nothing, no ALTER either, so it cannot
switch the append-only triggers off. `moment_audit_retention` (the prune job) may DELETE records,
and the trigger still limits that to records below a signed retention horizon.
`moment_audit_reader` (verify, search, tail) only reads. Tables a later migration adds are
writable by the service unless they are listed as append-only here.
"""

from __future__ import annotations

from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import AsyncEngine

from moment_persistence.roles import APPEND, READ, READ_WRITE, RolePlan, plan_statements

WRITER = "moment_audit_writer"
RETENTION = "moment_audit_retention"
READER = "moment_audit_reader"

APPEND_ONLY = ("audit_records", "audit_checkpoints", "audit_retention_horizons")
MESSAGING = ("outbox", "inbox")


class RolesNeedPostgres(RuntimeError):
    """SQLite has no roles: the embedded store is protected by its file's permissions only."""


def audit_plans(metadata: MetaData) -> list[RolePlan]:
    tables = set(metadata.tables)
    append_only = tables & set(APPEND_ONLY)
    store = tables - set(MESSAGING)
    writer = {name: APPEND if name in append_only else READ_WRITE for name in tables}
    if "audit_retention_horizons" in tables:
        # Only the prune job sets a horizon: the service that appends has no say in what goes.
        writer["audit_retention_horizons"] = READ
    retention = dict.fromkeys(store, READ)
    retention["audit_records"] = ("SELECT", "DELETE")
    if "audit_retention_horizons" in tables:
        retention["audit_retention_horizons"] = APPEND
    # The prune job announces what it pruned through the outbox; the service's relay sends it.
    retention["outbox"] = APPEND
    return [
        RolePlan(WRITER, writer),
        RolePlan(RETENTION, retention),
        RolePlan(READER, dict.fromkeys(store, READ)),
    ]


def role_sql(metadata: MetaData) -> list[str]:
    return plan_statements(audit_plans(metadata), metadata)


async def apply_roles(engine: AsyncEngine, metadata: MetaData) -> list[str]:
    """Create or re-grant the roles; run as the tables' owner, after every migration."""
    if engine.dialect.name != "postgresql":
        raise RolesNeedPostgres("database roles need PostgreSQL; SQLite has none")
    statements = role_sql(metadata)
    async with engine.begin() as connection:
        for statement in statements:
            await connection.execute(text(statement))
    return statements
