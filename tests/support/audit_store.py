"""Reading what the audit service stored, waiting for records that are still on their way."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from moment_audit.adapters.orm import audit_records
from tests.support.suite import Suite


async def stored_audit(
    suite: Suite, *conditions: Any, expect: int = 1, attempts: int = 300
) -> list[dict[str, Any]]:
    """The audit records matching every condition, oldest first, once `expect` have arrived."""
    rows: list[dict[str, Any]] = []
    for _ in range(attempts):
        async with suite.audit.core.database.sessionmaker() as session:
            query = select(audit_records).where(*conditions).order_by(audit_records.c.id)
            rows = [dict(r) for r in (await session.execute(query)).mappings()]
        if len(rows) >= expect:
            return rows
        await asyncio.sleep(0.05)
    return rows


def of(subject_id: str, action: str) -> tuple[Any, Any]:
    return audit_records.c.subject_id == subject_id, audit_records.c.action == action
