"""Idempotent, chained writes to the audit store: a redelivered event inserts nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import Insert, Table, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from moment_audit.adapters.orm import audit_chain_heads, audit_records
from moment_audit.domain.chain import ChainHead, extend

# Rows fetched per round trip when verify streams a whole store.
STREAM_BATCH = 5000


class SqlAuditStore:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def _insert_ignoring_duplicates(self, table: Table, key: list[str]) -> Insert:
        # ON CONFLICT DO NOTHING is dialect-specific SQL; both dialects we run on have it.
        if self._session.get_bind().dialect.name == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing(index_elements=key)
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=key)

    async def _locked_head(self, partition: int) -> ChainHead | None:
        # FOR UPDATE serialises writers of one partition on PostgreSQL; SQLite has one writer.
        row = (
            await self._session.execute(
                select(audit_chain_heads.c.seq, audit_chain_heads.c.hash)
                .where(audit_chain_heads.c.chain_partition == partition)
                .with_for_update()
            )
        ).first()
        return None if row is None else ChainHead(partition, int(row.seq), str(row.hash))

    async def _is_stored(self, source: str, event_id: str) -> bool:
        found = await self._session.execute(
            select(audit_records.c.id).where(
                audit_records.c.source == source, audit_records.c.event_id == event_id
            )
        )
        return found.first() is not None

    async def append(self, record: dict[str, Any], partition: int) -> bool:
        """Chain and store a record on `partition`. False (and no seq used) for a duplicate."""
        head = await self._locked_head(partition)
        if await self._is_stored(record["source"], record["event_id"]):
            return False
        link = extend(head or ChainHead(partition), record)
        chained = {
            **record,
            "chain_partition": partition,
            "seq": link.seq,
            "prev_hash": link.prev_hash,
            "record_hash": link.record_hash,
        }
        result = await self._session.execute(
            self._insert_ignoring_duplicates(audit_records, ["source", "event_id"]).values(chained)
        )
        if not getattr(result, "rowcount", 0):
            # Another partition stored the same source+id meanwhile: keep this chain unchanged.
            return False
        await self._move_head(head, link.head)
        return True

    async def _move_head(self, old: ChainHead | None, new: ChainHead) -> None:
        values = {"seq": new.seq, "hash": new.hash}
        if old is None:
            await self._session.execute(
                insert(audit_chain_heads).values(chain_partition=new.partition, **values)
            )
            return
        await self._session.execute(
            update(audit_chain_heads)
            .where(audit_chain_heads.c.chain_partition == new.partition)
            .values(**values)
        )

    async def heads(self) -> list[ChainHead]:
        rows = await self._session.execute(select(audit_chain_heads))
        return [ChainHead(int(r.chain_partition), int(r.seq), str(r.hash)) for r in rows]

    async def by_subject(self, subject_id: str) -> list[dict[str, Any]]:
        rows = await self._session.execute(
            select(audit_records)
            .where(audit_records.c.subject_id == subject_id)
            .order_by(audit_records.c.id)
        )
        return [dict(row) for row in rows.mappings()]

    async def stream_chained(self) -> AsyncIterator[dict[str, Any]]:
        """Every record, by partition, seq and id: the order verify walks the chains in."""
        order = (audit_records.c.chain_partition, audit_records.c.seq, audit_records.c.id)
        result = await self._session.stream(
            select(audit_records).order_by(*order).execution_options(yield_per=STREAM_BATCH)
        )
        async for row in result.mappings():
            yield dict(row)
