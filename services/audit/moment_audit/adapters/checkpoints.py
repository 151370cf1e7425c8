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
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from moment_audit.adapters.orm import audit_checkpoints, messaging
from moment_audit.adapters.repositories import SqlAuditStore
from moment_audit.adapters.watch_store import SqlWatchStore
from moment_audit.config import CheckpointConfig
from moment_audit.domain.chain import GENESIS_HASH, ChainHead
from moment_audit.domain.checkpoints import Checkpoint
from moment_audit.domain.findings import finding_alert
from moment_audit.domain.rules import Rule
from moment_audit.service.streams import alert_messages
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


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(at: datetime) -> datetime:
    # SQLite hands back naive datetimes; they were stored as UTC.
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


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
    """Signs each partition's head every `every_records` records and at least every
    `every_seconds` seconds: over new records while they arrive, over the unchanged head (a
    heartbeat) when none do, so that a stale newest checkpoint is itself a finding. The timing
    is read from the newest stored checkpoint's `created_at`, so it spans restarts and instances.
    The signed partition set names only partitions that have a checkpoint (stored, or signed in
    the same pass and stored in the same transaction), so verify may demand a checkpoint of every
    partition a signed set names."""

    def __init__(
        self,
        vault: VaultClient,
        config: CheckpointConfig,
        uow_factory: Callable[[], SqlUnitOfWork],
        admit: Admit | None = None,
        *,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        """`admit` (service/admission.py) narrows the due heads to what the service stored."""
        self._vault = vault
        self._config = config
        self._uow_factory = uow_factory
        self._clock = clock
        # The highest number this process stored, per partition: the store must never show less.
        self._signed: dict[int, int] = {}
        # When this process first saw a partition that has no checkpoint yet: nothing stored
        # to time its first one from.
        self._first_seen: dict[int, datetime] = {}
        self._admit = admit
        self._task: asyncio.Task[None] | None = None

    def _due(self, head: ChainHead, newest: Checkpoint | None, now: datetime, force: bool) -> bool:
        signed_seq = 0 if newest is None else newest.seq
        if head.seq < signed_seq or head.seq == 0:
            return False
        if head.seq > signed_seq and (force or head.seq - signed_seq >= self._config.every_records):
            return True
        since = (
            self._first_seen.setdefault(head.partition, now)
            if newest is None
            else _utc(newest.created_at)
        )
        return (now - since).total_seconds() >= self._config.every_seconds

    async def run_once(self, *, force: bool = False) -> list[Checkpoint]:
        """Sign every head that is due (`force`: every head beyond its last checkpoint)."""
        now = self._clock()
        async with self._uow_factory() as uow:
            heads = await SqlAuditStore(uow.session).heads()
            latest = await SqlCheckpointStore(uow.session).latest()
        refused = await self._refuse_rollbacks(heads, latest, now)
        due = [
            h
            for h in heads
            if h.partition not in refused and self._due(h, latest.get(h.partition), now, force)
        ]
        due = due if self._admit is None or not due else await self._admit(due, latest)
        # A partition once signed stays in every later checkpoint's set, so one that vanishes
        # whole (records, checkpoints and head) is still named by the others.
        partitions = tuple(
            sorted(
                {*latest, *(h.partition for h in due)}.union(
                    *(c.partitions for c in latest.values())
                )
            )
        )
        made = [await self._sign(h, latest.get(h.partition), partitions, now) for h in due]
        async with self._uow_factory() as uow:
            stored = [cp for cp in made if await self._store(uow.session, cp)]
            await uow.commit()
        for cp in stored:
            self._signed[cp.partition] = max(self._signed.get(cp.partition, 0), cp.number or 0)
        return stored

    def _rollbacks(self, heads: list[ChainHead], latest: dict[int, Checkpoint]) -> dict[int, str]:
        """Partitions whose stored checkpoints went backwards, and how."""
        found: dict[int, str] = {}
        for partition, signed in self._signed.items():
            newest = latest.get(partition)
            if newest is None or (newest.number or 0) < signed:
                shown = "none" if newest is None else f"number {newest.number}"
                found[partition] = (
                    f"newest stored checkpoint is {shown}, this process signed {signed}"
                )
        for head in heads:
            newest = latest.get(head.partition)
            if newest is not None and head.seq < newest.seq:
                found[head.partition] = (
                    f"chain head at seq {head.seq}, behind checkpoint {newest.number} at seq "
                    f"{newest.seq}"
                )
        return found

    async def _refuse_rollbacks(
        self, heads: list[ChainHead], latest: dict[int, Checkpoint], now: datetime
    ) -> set[int]:
        """Signing on top of checkpoints deleted under us would fork the chain a witness holds:
        refuse those partitions, log, and alert (once per distinct rollback, by alert id)."""
        found = self._rollbacks(heads, latest)
        if not found:
            return set()
        alerts = []
        for partition, how in sorted(found.items()):
            log.error(
                "audit checkpoints of partition %d went backwards (%s): not signing", partition, how
            )
            detail = f"audit checkpoints rolled back, partition {partition}: {how}; not signed"
            alerts.append(
                finding_alert(
                    Rule.CHECKPOINT_ROLLBACK,
                    "high",
                    f"{partition}:{how}",
                    detail,
                    count=1,
                    first_seen=now,
                    last_seen=now,
                )
            )
        async with self._uow_factory() as uow:
            known = await SqlWatchStore(uow.session).raised([a.alert_id for a in alerts])
            fresh = [a for a in alerts if a.alert_id not in known]
            await add_to_outbox(uow.session, messaging, alert_messages(fresh))
            await uow.commit()
        return set(found)

    async def _sign(
        self,
        head: ChainHead,
        previous: Checkpoint | None,
        partitions: tuple[int, ...],
        now: datetime,
    ) -> Checkpoint:
        unsigned = Checkpoint(
            head.partition,
            head.seq,
            head.hash,
            now,
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
