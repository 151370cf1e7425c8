"""Idempotent consumers: the ids of processed messages are recorded with the handler's own writes.

Because the inbox row commits in the same transaction as the state change, a redelivered message
finds its row and changes nothing; for requests, the stored reply is sent again instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from moment_contracts.envelope import Envelope
from moment_messaging.tables import MessagingTables

_DIGEST = "request_digest"


@dataclass(frozen=True)
class StoredReply:
    type: str
    body: bytes
    # SHA-256 of the body of the request this reply was made for (where the table keeps it): the
    # reply is sent again only for those bytes, never for another request that reused the id.
    request_digest: bytes | None = None


class Inbox:
    def __init__(self, tables: MessagingTables, consumer: str) -> None:
        self._table = tables.inbox
        self.consumer = consumer

    async def seen(self, session: AsyncSession, envelope: Envelope) -> StoredReply | bool:
        """False if new; the stored reply (or True when there was none) if already processed."""
        columns = [self._table.c.reply_type, self._table.c.reply]
        if _DIGEST in self._table.c:
            columns.append(self._table.c[_DIGEST])
        row = (
            await session.execute(
                select(*columns).where(
                    self._table.c.consumer == self.consumer,
                    self._table.c.source == envelope.source,
                    self._table.c.event_id == envelope.id,
                )
            )
        ).first()
        if row is None:
            return False
        if row.reply_type is None:
            return True
        digest = row[2] if len(row) > 2 else None
        return StoredReply(type=row.reply_type, body=row.reply, request_digest=digest)

    async def record(
        self, session: AsyncSession, envelope: Envelope, reply: StoredReply | None = None
    ) -> None:
        """Insert the marker. A concurrent duplicate fails on the primary key and rolls back."""
        values = {
            "consumer": self.consumer,
            "source": envelope.source,
            "event_id": envelope.id,
            "processed_at": datetime.now(UTC),
            "reply_type": reply.type if reply else None,
            "reply": reply.body if reply else None,
        }
        if reply is not None and _DIGEST in self._table.c:
            values[_DIGEST] = reply.request_digest
        await session.execute(insert(self._table).values(**values))
