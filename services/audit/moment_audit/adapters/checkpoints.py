"""Signed checkpoints: store them (append-only) and publish them to audit.checkpoints.

The Checkpointer runs beside ingest rather than inside it: a Vault call per checkpoint stays off
the ingest path, and a Vault outage delays checkpoints without stopping the audit trail. It reads
committed chain heads, signs them outside any transaction, then stores and outboxes each
checkpoint in one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from moment_audit.adapters.orm import audit_checkpoints, messaging
from moment_audit.adapters.repositories import SqlAuditStore
from moment_audit.config import CheckpointConfig
from moment_audit.domain.chain import GENESIS_HASH, ChainHead
from moment_audit.domain.checkpoints import Checkpoint
from moment_contracts import topics
from moment_contracts.audit_chain import CheckpointSigned
from moment_contracts.base import Contract
from moment_contracts.envelope import Envelope
from moment_crypto.errors import CryptoError
from moment_crypto.vault import VaultClient
from moment_messaging.outbox import OutboxMessage, add_to_outbox
from moment_persistence.errors import PersistenceError
from moment_persistence.unit_of_work import SqlUnitOfWork

log = logging.getLogger(__name__)
SOURCE = "/moment/audit"
# The heads due, and each partition's newest checkpoint, in; the heads that may be signed, out.
Admit = Callable[[list[ChainHead], dict[int, Checkpoint]], Awaitable[list[ChainHead]]]


async def announce(session: AsyncSession, body: Contract, partition: int) -> None:
    """Publish a change to a partition's chain on audit.checkpoints, in the caller's transaction."""
    envelope = Envelope.of(body, source=SOURCE, subject=f"partition-{partition}")
    await add_to_outbox(session, messaging, [OutboxMessage(topics.AUDIT_CHECKPOINTS, envelope)])


def _signed_seq(checkpoint: Checkpoint | None) -> int:
    return 0 if checkpoint is None else checkpoint.seq


class SqlCheckpointStore:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def latest(self) -> dict[int, Checkpoint]:
        """Each partition's newest chained checkpoint."""
        c = audit_checkpoints.c
        newest = (
            select(c.chain_partition, func.max(c.number).label("number"))
            .where(c.number.is_not(None))
            .group_by(c.chain_partition)
            .subquery()
        )
        rows = await self._session.execute(
            select(audit_checkpoints).join(
                newest,
                (c.chain_partition == newest.c.chain_partition) & (c.number == newest.c.number),
            )
        )
        return {int(r.chain_partition): _checkpoint(r) for r in rows}

    async def all(self) -> list[Checkpoint]:
        """Every checkpoint, by partition, then the unchained (pre-0008) ones by seq first."""
        c = audit_checkpoints.c
        rows = await self._session.execute(
            select(audit_checkpoints).order_by(
                c.chain_partition, c.number.is_not(None), c.number, c.seq, c.id
            )
        )
        return [_checkpoint(r) for r in rows]

    async def add(self, checkpoint: Checkpoint) -> bool:
        """False when this partition and seq are checkpointed already (another instance)."""
        values = {
            "chain_partition": checkpoint.partition,
            "seq": checkpoint.seq,
            "hash": checkpoint.hash,
            "created_at": checkpoint.created_at,
            "signature": checkpoint.signature,
            "number": checkpoint.number,
            "prev": checkpoint.prev,
            "partitions": json.dumps(list(checkpoint.partitions)),
        }
        dialect = postgresql if self._session.get_bind().dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(audit_checkpoints).values(values)
        stmt = stmt.on_conflict_do_nothing(index_elements=["chain_partition", "number"])
        result = await self._session.execute(stmt)
        return bool(getattr(result, "rowcount", 0))


def _checkpoint(row: Any) -> Checkpoint:
    partitions = tuple(int(p) for p in json.loads(row.partitions)) if row.partitions else ()
    number = None if row.number is None else int(row.number)
    return Checkpoint(
        int(row.chain_partition),
        int(row.seq),
        str(row.hash),
        row.created_at,
        str(row.signature),
        number,
        row.prev,
        partitions,
    )


class Checkpointer:
    """Signs each partition's head every `every_records` records or `every_seconds` seconds."""

    def __init__(
        self,
        vault: VaultClient,
        config: CheckpointConfig,
        uow_factory: Callable[[], SqlUnitOfWork],
        admit: Admit | None = None,
    ) -> None:
        """`admit` (service/admission.py) narrows the due heads to what the service stored."""
        self._vault = vault
        self._config = config
        self._uow_factory = uow_factory
        self._admit = admit
        self._last_signed_at: dict[int, float] = {}
        self._task: asyncio.Task[None] | None = None

    def _due(self, head: ChainHead, signed_seq: int, force: bool) -> bool:
        if head.seq <= signed_seq:
            return False
        if force or head.seq - signed_seq >= self._config.every_records:
            return True
        since = self._last_signed_at.setdefault(head.partition, time.monotonic())
        return time.monotonic() - since >= self._config.every_seconds

    async def run_once(self, *, force: bool = False) -> list[Checkpoint]:
        """Sign every head that is due (`force`: every head beyond its last checkpoint)."""
        async with self._uow_factory() as uow:
            heads = await SqlAuditStore(uow.session).heads()
            latest = await SqlCheckpointStore(uow.session).latest()
        # A partition once signed stays in every later checkpoint's set, so one that vanishes
        # whole (records, checkpoints and head) is still named by the others.
        partitions = tuple(
            sorted({h.partition for h in heads}.union(*(c.partitions for c in latest.values())))
        )
        due = [h for h in heads if self._due(h, _signed_seq(latest.get(h.partition)), force)]
        due = due if self._admit is None or not due else await self._admit(due, latest)
        made = [await self._sign(head, latest.get(head.partition), partitions) for head in due]
        async with self._uow_factory() as uow:
            stored = [cp for cp in made if await self._store(uow.session, cp)]
            await uow.commit()
        for checkpoint in made:
            self._last_signed_at[checkpoint.partition] = time.monotonic()
        return stored

    async def _sign(
        self, head: ChainHead, previous: Checkpoint | None, partitions: tuple[int, ...]
    ) -> Checkpoint:
        unsigned = Checkpoint(
            head.partition,
            head.seq,
            head.hash,
            datetime.now(UTC),
            "",
            1 if previous is None or previous.number is None else previous.number + 1,
            GENESIS_HASH if previous is None else previous.digest(),
            partitions,
        )
        signature = await self._vault.sign(self._config.key_name, unsigned.payload())
        return dataclasses.replace(unsigned, signature=signature)

    async def _store(self, session: AsyncSession, cp: Checkpoint) -> bool:
        if not await SqlCheckpointStore(session).add(cp):
            return False
        body = CheckpointSigned(
            partition=cp.partition,
            number=cp.number or 1,
            seq=cp.seq,
            hash=cp.hash,
            created_at=cp.created_at,
            prev=cp.prev or GENESIS_HASH,
            partitions=list(cp.partitions),
            signature=cp.signature,
        )
        await announce(session, body, cp.partition)
        return True

    async def _loop(self) -> None:
        tick = min(1.0, self._config.every_seconds)
        while True:
            try:
                await self.run_once()
            except (CryptoError, PersistenceError, OSError) as exc:
                log.warning("audit checkpoint not signed yet: %s", exc)
            await asyncio.sleep(tick)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="audit-checkpoints")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
