"""Is every query column of audit_records still tied to its hashed document?

verify hashes documents only, so the query columns (what search, tail and the history API answer
with) are trustworthy only while the database refuses a row that disagrees with its document:
the CHECK constraint and, on PostgreSQL, the function it calls (adapters/agreement.py). A DBA
can drop the constraint, re-add it NOT VALID, or redefine the function; on SQLite a session can
also switch CHECK constraints off. This reads the live schema once per verify run (and, on
SQLite, re-checks every row) and names each way the guarantee no longer holds.
"""

from __future__ import annotations

import re

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from moment_audit.adapters.agreement import (
    CONSTRAINT,
    DOCUMENT_COLUMNS,
    FUNCTION,
    FUNCTION_BODY,
    POSTGRESQL_CHECK,
    SQLITE_CHECK,
)
from moment_audit.adapters.orm import audit_records

_NOISE = re.compile(r"\s+|[()\"]|::text\b|::character varying\b")
TABLE = audit_records.name


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
    bodies = await session.scalars(
        text("SELECT prosrc FROM pg_proc WHERE proname = :name"), {"name": FUNCTION}
    )
    if {_normal(str(body)) for body in bodies} != {_normal(FUNCTION_BODY)}:
        problems.append(f"{FUNCTION}() is redefined")
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
