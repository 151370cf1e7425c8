"""Reading what the audit service stored, waiting for records that are still on their way; and
changing it behind the service's back, as a DBA could."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from sqlalchemy import Executable, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from moment_audit.adapters.orm import audit_records
from tests.support.suite import Suite
from tests.support.waiting import DEADLINE_S, POLL_S


async def stored_audit(
    suite: Suite,
    *conditions: Any,
    expect: int = 1,
    attempts: int | None = None,
    timeout_s: float = DEADLINE_S,
) -> list[dict[str, Any]]:
    """The audit records matching every condition, oldest first, once `expect` have arrived
    (or what there is after `timeout_s`; `attempts`: after that many looks, 1 = look now)."""
    rows: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + timeout_s
    looks = 0
    while True:
        async with suite.audit.core.database.sessionmaker() as session:
            query = select(audit_records).where(*conditions).order_by(audit_records.c.id)
            rows = [dict(r) for r in (await session.execute(query)).mappings()]
        looks += 1
        if len(rows) >= expect or (attempts is not None and looks >= attempts):
            return rows
        if attempts is None and asyncio.get_running_loop().time() > deadline:
            return rows
        await asyncio.sleep(POLL_S)


def of(subject_id: str, action: str) -> tuple[Any, Any]:
    return audit_records.c.subject_id == subject_id, audit_records.c.action == action


async def as_dba(engine: AsyncEngine, *statements: str | Executable) -> None:
    """Run statements with every trigger out of the way: replica mode on PostgreSQL (the
    owner's way around triggers), on SQLite (which has no such mode) triggers dropped and put
    back as they were afterwards, as a careful attacker would, so verify's catalog check sees
    them in place."""
    async with engine.begin() as connection:
        lifted: list[str] = []
        if connection.dialect.name == "postgresql":
            await connection.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            rows = await connection.execute(
                text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
            )
            for name, sql in list(rows):
                await connection.execute(text(f"DROP TRIGGER {name}"))
                lifted.append(str(sql))
        for statement in statements:
            await connection.execute(text(statement) if isinstance(statement, str) else statement)
        for sql in lifted:
            # A trigger on a table the statements dropped cannot come back: that shows.
            with contextlib.suppress(DBAPIError):
                await connection.execute(text(sql))
