"""Idempotent writes to the audit store: a redelivered event inserts nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from moment_audit.adapters.orm import audit_records


class SqlAuditStore:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def _insert(self) -> Insert:
        # ON CONFLICT DO NOTHING is dialect-specific SQL; both dialects we run on have it.
        if self._session.get_bind().dialect.name == "postgresql":
            return postgresql.insert(audit_records).on_conflict_do_nothing(
                index_elements=["source", "event_id"]
            )
        return sqlite.insert(audit_records).on_conflict_do_nothing(
            index_elements=["source", "event_id"]
        )

    async def append(self, record: dict[str, Any]) -> bool:
        """True if stored, False if this source+id was already there."""
        result = await self._session.execute(self._insert().values(**record))
        return bool(getattr(result, "rowcount", 0))

    async def by_subject(self, subject_id: str) -> list[dict[str, Any]]:
        rows = await self._session.execute(
            select(audit_records)
            .where(audit_records.c.subject_id == subject_id)
            .order_by(audit_records.c.id)
        )
        return [dict(row) for row in rows.mappings()]
