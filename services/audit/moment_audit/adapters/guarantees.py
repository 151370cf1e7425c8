"""Are the guarantees verify's findings rest on still in place? Read from the live catalog.

`unguarded_columns`: the query columns of audit_records (what search, tail and the history API
answer with) are tied to the hashed document by the CHECK constraint and, on PostgreSQL, the
function it calls (adapters/agreement.py). A DBA can drop the constraint, re-add it NOT VALID,
or redefine the function; on SQLite a session can also switch CHECK constraints off. Each way it
no longer holds is an UNGUARDED COLUMN. Verify does not rely on it (it reads every row against
its document itself, domain/agreement_check.py): the CHECK guards writes.

`missing_guards`: what the append-only promise rests on, each one not in place a GUARD MISSING:
the triggers of migration 0009's constants (present, enabled in ordinary sessions, firing BEFORE
on their events for every row, calling their function with its body and pinned search_path)
and no other trigger on those tables (one could drop each record silently),
session_replication_role not `replica` by default for anyone in this database, the primary keys
and unique constraints of adapters/orm.py (present, validated, their index unique and valid),
no UPDATE, DELETE, TRUNCATE or TRIGGER on the append-only tables for anyone but their owner and
adapters/db_roles.py's plan, none of whose roles owns them or is a superuser, and no row-level
security to hide rows. A superuser can get around
each of these and put it back; what they did meanwhile is what verify's own row checks and the
witnessed checkpoints are for.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from sqlalchemy import PrimaryKeyConstraint, Table, UniqueConstraint, text
from sqlalchemy.ext.asyncio import AsyncSession

from moment_audit.adapters.agreement import (
    CONSTRAINT,
    DOCUMENT_COLUMNS,
    FUNCTION,
    FUNCTION_BODY,
    FUNCTION_SEARCH_PATH,
    POSTGRESQL_CHECK,
    SQLITE_CHECK,
)
from moment_audit.adapters.db_roles import audit_plans
from moment_audit.adapters.orm import (
    audit_checkpoints,
    audit_records,
    audit_retention_horizons,
    metadata,
)

_NOISE = re.compile(r"\s+|[()\"]|::text\b|::character varying\b")
TABLE = audit_records.name
_PINNED = f"search_path={FUNCTION_SEARCH_PATH}"


def _normal(expression: str) -> str:
    """Enough normalisation to compare SQL with the database's own rendering of it."""
    return _NOISE.sub("", expression).lower()


def _missing(columns: set[str]) -> list[str]:
    return [f"{name}: missing" for name, _, _ in DOCUMENT_COLUMNS if name not in columns]


async def _postgresql(session: AsyncSession) -> list[str]:
    columns = await session.scalars(
        text(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = :table"
        ),
        {"table": TABLE},
    )
    problems = _missing(set(columns))
    found = (
        await session.execute(
            text(
                "SELECT convalidated, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = CAST(:table AS regclass) AND conname = :name"
            ),
            {"table": TABLE, "name": CONSTRAINT},
        )
    ).first()
    if found is None:
        problems.append(f"{CONSTRAINT} is gone: no column is tied to its document")
    elif not found[0]:
        problems.append(f"{CONSTRAINT} is NOT VALID: rows before it were never checked")
    elif _normal(str(found[1])) != _normal(f"CHECK ({POSTGRESQL_CHECK})"):
        problems.append(f"{CONSTRAINT} checks something else")
    functions = (
        await session.execute(
            text("SELECT prosrc, proconfig FROM pg_proc WHERE proname = :name"),
            {"name": FUNCTION},
        )
    ).all()
    if {_normal(str(body)) for body, _ in functions} != {_normal(FUNCTION_BODY)}:
        problems.append(f"{FUNCTION}() is redefined")
    elif any(list(config or ()) != [_PINNED] for _, config in functions):
        problems.append(f"{FUNCTION}() runs with another search_path: a shadowing `=` could pass")
    return problems


async def _sqlite(session: AsyncSession) -> list[str]:
    columns = await session.execute(text(f"PRAGMA table_xinfo({TABLE})"))
    problems = _missing({str(c.name) for c in columns})
    create_table = await session.scalar(
        text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :table"),
        {"table": TABLE},
    )
    if _normal(f"CONSTRAINT {CONSTRAINT} CHECK ({SQLITE_CHECK})") not in _normal(
        str(create_table or "")
    ):
        problems.append(f"{CONSTRAINT} is gone or changed: no column is tied to its document")
        return problems
    # PRAGMA ignore_check_constraints lets a session write rows the constraint would refuse.
    verdicts = await session.scalars(text(f"PRAGMA quick_check({TABLE})"))
    failed = [v for v in verdicts if v != "ok" and "CHECK constraint" in str(v)]
    if failed:
        problems.append(f"{len(failed)} rows disagree with their document ({CONSTRAINT})")
    return problems


async def unguarded_columns(session: AsyncSession) -> list[str]:
    """One line per way the query columns are no longer tied to the hashed document."""
    if session.get_bind().dialect.name == "postgresql":
        return await _postgresql(session)
    return await _sqlite(session)


# What verify expects of the append-only guards: the last migration that set them.
_EXPECTED = importlib.import_module("moment_audit.migrations.versions.0009_guards_pinned_and_named")
_APPEND_ONLY = (audit_records, audit_checkpoints, audit_retention_horizons)
_APPEND_ONLY_NAMES = frozenset(table.name for table in _APPEND_ONLY)
# pg_trigger.tgtype bits (PostgreSQL's trigger.h).
_ROW, _BEFORE = 1, 2
_EVENT_BITS = {"INSERT": 4, "DELETE": 8, "UPDATE": 16, "TRUNCATE": 32}
# 'O' fires in ordinary sessions, 'A' always; 'R' only in replica mode and 'D' never.
_FIRES = {"O", "A"}
_FORBIDDEN = ("UPDATE", "DELETE", "TRUNCATE", "TRIGGER")


def _keys(table: Table) -> list[tuple[str, str]]:
    """Each primary key and unique constraint of `table` as PostgreSQL renders it."""
    found = []
    for constraint in table.constraints:
        columns = ", ".join(c.name for c in constraint.columns)  # type: ignore[attr-defined]
        if isinstance(constraint, PrimaryKeyConstraint):
            found.append((str(constraint.name), f"PRIMARY KEY ({columns})"))
        elif isinstance(constraint, UniqueConstraint):
            found.append((str(constraint.name), f"UNIQUE ({columns})"))
    return sorted(found)


_TRIGGERS_SQL = text(
    "SELECT t.tgname, c.relname, t.tgenabled::text AS tgenabled, t.tgtype, p.proname, "
    "p.prosrc, p.proconfig, l.lanname, t.tgqual IS NOT NULL OR t.tgattr::text <> '' AS partial "
    "FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_proc p ON p.oid = t.tgfoid "
    "JOIN pg_language l ON l.oid = p.prolang "
    "WHERE NOT t.tgisinternal AND c.relnamespace = :schema"
)


def _trigger_problems(
    expected: tuple[str, str, tuple[str, ...], str, str], found: Any, path: str
) -> list[str]:
    name, table, events, level, function = expected
    where = f"trigger {name} on {table}"
    if found is None:
        return [f"{where} is gone"]
    problems = []
    if found.tgenabled not in _FIRES:
        state = "fires only in replica mode" if found.tgenabled == "R" else "is disabled"
        problems.append(f"{where} {state}")
    tgtype = (_ROW if level == "ROW" else 0) | _BEFORE | sum(_EVENT_BITS[e] for e in events)
    if found.tgtype != tgtype or found.partial:
        problems.append(f"{where} fires on other events or rows than {' OR '.join(events)}")
    if found.proname != function:
        return [*problems, f"{where} calls {found.proname}() instead of {function}()"]
    body = _normal(_EXPECTED.PG_FUNCTIONS[function])
    if found.lanname != "plpgsql" or _normal(str(found.prosrc)) != body:
        problems.append(f"{function}() is redefined")
    if list(found.proconfig or ()) != [f"search_path={path}"]:
        problems.append(f"{function}() runs with another search_path: {found.proconfig}")
    return problems


async def _pg_triggers(session: AsyncSession, schema: int, path: str) -> list[str]:
    rows = await session.execute(_TRIGGERS_SQL, {"schema": schema})
    found = {(r.relname, r.tgname): r for r in rows}
    problems = []
    for expected in _EXPECTED.PG_TRIGGERS:
        problems += _trigger_problems(expected, found.get((expected[1], expected[0])), path)
    guards = {(table, name) for name, table, *_ in _EXPECTED.PG_TRIGGERS}
    problems += [
        _stranger(name, table)
        for table, name in sorted(set(found) - guards)
        if table in _APPEND_ONLY_NAMES
    ]
    # A redefined function is named once, not once per trigger that calls it.
    return list(dict.fromkeys(problems))


def _stranger(name: str, table: str) -> str:
    # A BEFORE INSERT trigger returning NULL (RAISE(IGNORE) on SQLite) drops each record
    # silently: ingest takes it for a redelivery, and no chain shows a gap.
    return f"trigger {name} on {table} is not one of the guards: it can change or drop writes"


async def _pg_replica_mode(session: AsyncSession) -> list[str]:
    """Ordinary triggers do not fire where session_replication_role is `replica` by default."""
    problems = []
    default = await session.scalar(
        text("SELECT reset_val FROM pg_settings WHERE name = 'session_replication_role'")
    )
    if default != "origin":
        problems.append(f"session_replication_role defaults to {default}: triggers do not fire")
    rows = await session.execute(
        text(
            "SELECT coalesce(r.rolname, 'every role'), coalesce(d.datname, 'every database'), cfg "
            "FROM pg_db_role_setting s LEFT JOIN pg_roles r ON r.oid = s.setrole "
            "LEFT JOIN pg_database d ON d.oid = s.setdatabase, unnest(s.setconfig) AS cfg "
            "WHERE (s.setdatabase = 0 OR d.datname = current_database()) "
            "AND cfg LIKE 'session_replication_role=%' AND cfg <> 'session_replication_role=origin'"
        )
    )
    for role, database, setting in rows:
        problems.append(f"{setting} for {role} in {database}: triggers do not fire there")
    return problems


async def _pg_keys(session: AsyncSession) -> list[str]:
    problems = []
    for table in _APPEND_ONLY:
        rows = await session.execute(
            text(
                "SELECT con.conname, con.convalidated, "
                "pg_get_constraintdef(con.oid) AS definition, "
                "coalesce(i.indisunique AND i.indisvalid AND i.indisready AND i.indislive, false) "
                "AS indexed FROM pg_constraint con LEFT JOIN pg_index i "
                "ON i.indexrelid = con.conindid WHERE con.conrelid = CAST(:table AS regclass)"
            ),
            {"table": table.name},
        )
        found = {r.conname: r for r in rows}
        for name, definition in _keys(table):
            row = found.get(name)
            if row is None:
                problems.append(f"{name} on {table.name} is gone")
            elif _normal(str(row.definition)) != _normal(definition):
                problems.append(f"{name} on {table.name} is {row.definition}, not {definition}")
            elif not (row.convalidated and row.indexed):
                problems.append(f"{name} on {table.name} is not valid or its index is not")
    return problems


def _allowed() -> set[tuple[str, str, str]]:
    """(role, table, privilege) the roles of adapters/db_roles.py hold by their plan."""
    return {
        (plan.role, table, privilege)
        for plan in audit_plans(metadata)
        for table, privileges in plan.tables.items()
        for privilege in privileges
    }


async def _pg_grants(session: AsyncSession, schema: int) -> list[str]:
    rows = await session.execute(
        text(
            "SELECT c.relname, CASE WHEN a.grantee = 0 THEN 'PUBLIC' "
            "ELSE pg_get_userbyid(a.grantee) END AS grantee, a.privilege_type "
            "FROM pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a "
            "WHERE c.relnamespace = :schema AND c.relname = ANY(:tables) "
            "AND a.grantee <> c.relowner AND a.privilege_type = ANY(:forbidden) "
            "ORDER BY 1, 2, 3"
        ),
        {
            "schema": schema,
            "tables": [t.name for t in _APPEND_ONLY],
            "forbidden": list(_FORBIDDEN),
        },
    )
    allowed = _allowed()
    return [
        f"{grantee} holds {privilege} on {table}"
        for table, grantee, privilege in rows
        if (grantee, table, privilege) not in allowed
    ]


async def _pg_role_powers(session: AsyncSession, schema: int) -> list[str]:
    """The plan's roles own nothing and are no superusers: else they can ALTER the triggers off
    (or need no privilege at all), whatever they were granted."""
    rows = await session.execute(
        text(
            "SELECT r.rolname, r.rolsuper, c.relname, "
            "pg_has_role(r.oid, c.relowner, 'MEMBER') AS owner "
            "FROM pg_roles r CROSS JOIN pg_class c WHERE r.rolname = ANY(:roles) "
            "AND c.relnamespace = :schema AND c.relname = ANY(:tables) ORDER BY 1, 3"
        ),
        {
            "roles": [plan.role for plan in audit_plans(metadata)],
            "schema": schema,
            "tables": sorted(_APPEND_ONLY_NAMES),
        },
    )
    problems = []
    for role, superuser, table, owner in rows:
        if superuser:
            problems.append(f"{role} is a superuser: no grant or trigger holds it")
        elif owner:
            problems.append(f"{role} can act as the owner of {table}: it can switch triggers off")
    return list(dict.fromkeys(problems))


async def _pg_row_security(session: AsyncSession, schema: int) -> list[str]:
    hiding = await session.scalars(
        text(
            "SELECT relname FROM pg_class WHERE relnamespace = :schema "
            "AND relname = ANY(:tables) AND relrowsecurity ORDER BY 1"
        ),
        {"schema": schema, "tables": [t.name for t in _APPEND_ONLY]},
    )
    return [f"row-level security on {name} can hide rows from verify" for name in hiding]


async def _pg_guards(session: AsyncSession) -> list[str]:
    found = (
        await session.execute(
            text(
                "SELECT c.relnamespace AS oid, quote_ident(n.nspname) AS name FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.oid = CAST(:table AS regclass)"
            ),
            {"table": audit_records.name},
        )
    ).one()
    schema = int(found.oid)
    return [
        *await _pg_triggers(session, schema, _EXPECTED.pinned_path(found.name)),
        *await _pg_replica_mode(session),
        *await _pg_keys(session),
        *await _pg_grants(session, schema),
        *await _pg_role_powers(session, schema),
        *await _pg_row_security(session, schema),
    ]


async def _sqlite_uniques(session: AsyncSession, table: Table) -> list[str]:
    indexes = await session.execute(text(f"PRAGMA index_list({table.name})"))
    unique = [str(row[1]) for row in indexes if row[2] and not row[4]]
    covered = set()
    for index in unique:
        info = await session.execute(text(f'PRAGMA index_info("{index}")'))
        covered.add(tuple(str(row[2]) for row in sorted(info, key=lambda r: r[0])))
    columns = await session.execute(text(f"PRAGMA table_info({table.name})"))
    keyed = tuple(str(r[1]) for r in sorted((r for r in columns if r[5]), key=lambda r: r[5]))
    problems = []
    # table.constraints is a set: sorted, so findings come in one order.
    for constraint in sorted(table.constraints, key=lambda c: str(c.name)):
        names = tuple(c.name for c in constraint.columns)  # type: ignore[attr-defined]
        if (isinstance(constraint, PrimaryKeyConstraint) and keyed != names) or (
            isinstance(constraint, UniqueConstraint) and names not in covered
        ):
            problems.append(f"{constraint.name} on {table.name} is gone")
    return problems


async def _sqlite_guards(session: AsyncSession) -> list[str]:
    rows = (
        await session.execute(
            text("SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger'")
        )
    ).all()
    found = {str(name): str(sql) for name, _, sql in rows}
    problems = []
    for name, sql in _EXPECTED.SQLITE_TRIGGERS.items():
        if name not in found:
            problems.append(f"trigger {name} is gone")
        elif _normal(found[name]) != _normal(sql):
            problems.append(f"trigger {name} is changed")
    problems += [
        _stranger(str(name), str(table))
        for name, table, _ in sorted(rows)
        if table in _APPEND_ONLY_NAMES and name not in _EXPECTED.SQLITE_TRIGGERS
    ]
    for table in _APPEND_ONLY:
        problems += await _sqlite_uniques(session, table)
    return problems


async def missing_guards(session: AsyncSession) -> list[str]:
    """One line per trigger, constraint or grant the append-only promise rests on that is not
    in place, read from the live catalog."""
    if session.get_bind().dialect.name == "postgresql":
        return await _pg_guards(session)
    return await _sqlite_guards(session)
