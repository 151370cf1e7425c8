"""Request ids already used, for requests the inbox does not remember (reads).

A read's sealed boxes are bound to its request id, so answering each id once is what stops a
captured read from being resent to read again. Rows older than the boxes' window are pruned: a
request that old is refused as stale before its id is looked at.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from moment_identity.adapters.orm import used_request_ids

_U = used_request_ids.c


class SqlRequestIds:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def claim(self, source: str, request_id: str, now: datetime) -> bool:
        """Record the id; False when it was used before. A concurrent claim of the same id waits
        for the first one's transaction, then gets False."""
        insert = (
            self._insert()
            .values(source=source, request_id=request_id, used_at=now)
            .on_conflict_do_nothing(index_elements=["source", "request_id"])
        )
        result = await self._session.execute(insert)
        return bool(getattr(result, "rowcount", 0))

    async def prune(self, before: datetime) -> None:
        await self._session.execute(delete(used_request_ids).where(_U.used_at < before))

    def _insert(self) -> Any:
        if self._session.get_bind().dialect.name == "postgresql":
            return postgresql.insert(used_request_ids)
        return sqlite.insert(used_request_ids)
