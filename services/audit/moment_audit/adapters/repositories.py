"""Idempotent, chained writes to the audit store: a redelivered event inserts nothing.

A batch of records for one partition is chained under one lock on that partition's head and
stored with one multi-row INSERT ... ON CONFLICT (source, event_id) DO NOTHING; on PostgreSQL
the query columns are read from the documents in SQL (adapters/agreement.py). De-duplication
needs no SELECT: in the common case nothing conflicts. When something does (a redelivery after a
crash), the links already computed would skip a seq, so the caller learns which records were
stored before (`StoredBefore`), rolls back and chains the batch again without them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    DateTime,
    Insert,
    Integer,
    Table,
    Text,
    bindparam,
    cast,
    func,
    insert,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import LargeBinary

from moment_audit.adapters.agreement import DOCUMENT_COLUMNS, POSTGRESQL_INSERT
from moment_audit.adapters.orm import audit_chain_heads, audit_records
from moment_audit.domain.chain import ChainHead, ChainLink, extend
from moment_crypto.record_mac import RecordMacs

# Rows fetched per round trip when verify streams a whole store.
STREAM_BATCH = 5000

Key = tuple[str, str]


_POSTGRESQL_INSERT = text(POSTGRESQL_INSERT).bindparams(
    bindparam("documents", type_=ARRAY(Text)),
    bindparam("hashes", type_=ARRAY(Text)),
    bindparam("macs", type_=ARRAY(Text)),
    bindparam("partitions", type_=ARRAY(Integer)),
    bindparam("offsets", type_=ARRAY(BigInteger)),
    bindparam("received_at", type_=DateTime(timezone=True)),
)


def row_of(
    link: ChainLink, partition: int, offset: int, received_at: datetime, mac: str | None = None
) -> dict[str, Any]:
    """A record's columns read from its document, as PostgreSQL's insert reads them in SQL."""
    document = json.loads(link.document)
    values = {column: document[key] for column, key, _ in DOCUMENT_COLUMNS}
    values["occurred_at"] = datetime.fromisoformat(values["occurred_at"])
    return {
        **values,
        "document": link.document,
        "record_hash": link.record_hash,
        "record_mac": mac,
        "kafka_partition": partition,
        "kafka_offset": offset,
        "received_at": received_at,
    }


class StoredBefore(Exception):
    """Some records of the batch were already stored; roll back and append again without them."""

    def __init__(self, keys: set[Key]) -> None:
        super().__init__(f"{len(keys)} records of the batch were stored before")
        self.keys = keys


def key_of(record: Mapping[str, Any]) -> Key:
    return str(record["source"]), str(record["event_id"])


class SqlAuditStore:
    def __init__(self, session: AsyncSession, macs: RecordMacs | None = None) -> None:
        """`macs`: the service's record MAC keys; without them (dev, no Vault) no MAC is stored."""
        self._session = session
        self._macs = macs

    @property
    def _dialect(self) -> str:
        return self._session.get_bind().dialect.name

    def _insert_ignoring_duplicates(self, table: Table, key: list[str]) -> Insert:
        # ON CONFLICT DO NOTHING is dialect-specific SQL; both dialects we run on have it.
        if self._dialect == "postgresql":
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

    async def append_many(
        self, records: Sequence[Mapping[str, Any]], partition: int, *, received_at: datetime
    ) -> list[bool]:
        """Chain and store `records` on `partition`, in order; per record, whether it was stored.

        Each record holds the content fields plus kafka_partition and kafka_offset. A record
        whose source and event id came earlier in the batch is not stored and takes no seq.
        Raises StoredBefore when some, but not all, new records were stored before.
        """
        head = await self._locked_head(partition)
        seen: set[Key] = set()
        fresh: list[int] = []
        for index, record in enumerate(records):
            if (key := key_of(record)) not in seen:
                seen.add(key)
                fresh.append(index)
        links = self._chain(head or ChainHead(partition), [records[i] for i in fresh])
        stored = await self._insert(records, fresh, links, received_at)
        if len(stored) < len(fresh):
            if stored:
                raise StoredBefore({key_of(records[i]) for i in fresh} - stored)
            return [False] * len(records)
        await self._move_head(head, links[-1].head)
        flags = [False] * len(records)
        for index in fresh:
            flags[index] = True
        return flags

    @staticmethod
    def _chain(head: ChainHead, records: list[Mapping[str, Any]]) -> list[ChainLink]:
        links = []
        for record in records:
            link = extend(head, record)
            links.append(link)
            head = link.head
        return links

    async def _insert(
        self,
        records: Sequence[Mapping[str, Any]],
        fresh: list[int],
        links: list[ChainLink],
        received_at: datetime,
    ) -> set[Key]:
        """The keys actually inserted: a conflicting record is skipped, not an error."""
        if not fresh:
            return set()
        where = [(records[i]["kafka_partition"], records[i]["kafka_offset"]) for i in fresh]
        macs: list[str | None] = (
            [None] * len(links)
            if self._macs is None
            else [
                self._macs.mac(link.partition, link.seq, link.prev_hash, link.record_hash)
                for link in links
            ]
        )
        if self._dialect == "postgresql":
            result = await self._session.execute(
                _POSTGRESQL_INSERT,
                {
                    "documents": [link.document for link in links],
                    "hashes": [link.record_hash for link in links],
                    "macs": macs,
                    "partitions": [partition for partition, _ in where],
                    "offsets": [offset for _, offset in where],
                    "received_at": received_at,
                },
            )
        else:
            rows = [
                row_of(link, partition, offset, received_at, mac)
                for link, (partition, offset), mac in zip(links, where, macs, strict=True)
            ]
            statement = self._insert_ignoring_duplicates(audit_records, ["source", "event_id"])
            returning = statement.returning(audit_records.c.source, audit_records.c.event_id)
            result = await self._session.execute(returning, rows)
        return {(str(source), str(event_id)) for source, event_id in result}

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

    def _document_bytes(self) -> Any:
        # The exact bytes record_hash covers, so verify hashes them without encoding anything.
        document = audit_records.c.document
        if self._dialect == "postgresql":
            return func.convert_to(document, literal_column("'UTF8'")).label("document")
        return cast(document, LargeBinary).label("document")

    async def stream_chained(
        self,
        partition: int | None = None,
        up_to_seq: int | None = None,
        *,
        after_seq: int | None = None,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """What verify needs of every record, by partition, seq and id: the order it walks the
        chains in. `document` is the stored document's UTF-8 bytes; every query column comes
        too, as search reads it, so verify can compare it with the document itself, and the
        record MAC. Pruning verifies one partition up to a checkpoint: `partition` and
        `up_to_seq` narrow it; admission reads a partition's records since its last checkpoint
        (`after_seq`)."""
        c = audit_records.c
        tied = [c[column] for column, _, _ in DOCUMENT_COLUMNS]
        query = (
            select(c.id, c.record_hash, c.record_mac, self._document_bytes(), *tied)
            .order_by(c.chain_partition, c.seq, c.id)
            .execution_options(yield_per=STREAM_BATCH)
        )
        if partition is not None:
            query = query.where(c.chain_partition == partition)
        if up_to_seq is not None:
            query = query.where(c.seq <= up_to_seq)
        if after_seq is not None:
            query = query.where(c.seq > after_seq)
        result = await self._session.stream(query)
        async for row in result.mappings():
            yield dict(row)
