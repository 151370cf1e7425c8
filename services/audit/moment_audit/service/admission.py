"""Never sign what the service did not ingest: the check the Checkpointer runs before signing.

The chain head table is derived (anyone holding the database can move it), and a chain link is
public arithmetic, so a correctly chained row slipped into audit_records would otherwise be
signed over by the next checkpoint. Before signing a partition, its records since its newest
checkpoint (whose own signature is checked first) are walked: each must be the next seq, link to
the previous record, hash to its record_hash, be alone at its seq, and carry a record MAC
(moment_crypto.record_mac) only the service's Vault key can make. The head signed is the last
record of that run. At the first record that fails, the walk stops: the genuine records before it
are still signed (they are proven, and witnessing them early helps), nothing at or beyond it is,
and one `unauthenticated-record` alert (high) names the partition and seq, once (its id is
derived from them, and ids already in the outbox are skipped). The partition then stays unsigned
past that record until an operator deals with it, so the refusal also shows as a stale
checkpoint.

`RecordWalk` is the pure part, fed rows; `Admission` reads them and raises the alerts.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from moment_audit.adapters.checkpoints import SqlCheckpointStore
from moment_audit.adapters.repositories import SqlAuditStore
from moment_audit.domain.chain import ChainHead, digest
from moment_audit.domain.checkpoints import Checkpoint
from moment_audit.domain.findings import unauthenticated_record_alert
from moment_audit.service.verify import SignatureCheck
from moment_audit.service.watch import raise_new
from moment_crypto.record_mac import RecordMacs
from moment_persistence.unit_of_work import SqlUnitOfWork

log = logging.getLogger(__name__)

# Why a record is refused, one word each (the alert's detail).
GAP = "missing-record"
DUPLICATE = "two-rows-for-one-seq"
BROKEN_LINK = "broken-link"
BAD_HASH = "hash-mismatch"
MISSING_MAC = "missing-mac"
BAD_MAC = "bad-mac"
UNTRUSTED_CHECKPOINT = "untrusted-checkpoint"

Signatures = Callable[[list[tuple[bytes, str]]], Awaitable[SignatureCheck]]


@dataclass(frozen=True)
class Refusal:
    partition: int
    seq: int
    reason: str


@dataclass(frozen=True)
class Admitted:
    """The head that may be signed (the start when nothing new is proven), and why the walk
    stopped early, if it did."""

    head: ChainHead
    refusal: Refusal | None = None


class RecordWalk:
    """One partition's records after `start` (a trusted checkpoint's seq and hash, or the
    genesis), fed in (seq, id) order. Pure: no I/O."""

    def __init__(self, start: ChainHead, macs: RecordMacs) -> None:
        self._head = start
        self._macs = macs
        self._pending: ChainHead | None = None
        self.refusal: Refusal | None = None

    def _refuse(self, seq: int, reason: str) -> bool:
        self.refusal = Refusal(self._head.partition, seq, reason)
        return False

    def _fault(self, row: Mapping[str, Any]) -> str | None:
        if int(row["seq"]) != self._head.seq + 1:
            return GAP
        if row["prev_hash"] != self._head.hash:
            return BROKEN_LINK
        if digest(row["document"]) != row["record_hash"]:
            return BAD_HASH
        mac = row.get("record_mac")
        if mac is None:
            return MISSING_MAC
        place = (self._head.partition, int(row["seq"]), str(row["prev_hash"]))
        return None if self._macs.verify(*place, str(row["record_hash"]), str(mac)) else BAD_MAC

    def feed(self, row: Mapping[str, Any]) -> bool:
        """False once a record is refused: nothing after it is looked at."""
        if self.refusal is not None:
            return False
        seq = int(row["seq"])
        if self._pending is not None:
            # A record is admitted only once the next row shows it is alone at its seq.
            if seq == self._pending.seq:
                return self._refuse(seq, DUPLICATE)
            self._head, self._pending = self._pending, None
        fault = self._fault(row)
        if fault is not None:
            return self._refuse(self._head.seq + 1, fault)
        self._pending = ChainHead(self._head.partition, seq, str(row["record_hash"]))
        return True

    def finish(self, up_to: int) -> Admitted:
        """`up_to`: the seq the (derived) head table claims; records short of it are missing."""
        if self.refusal is None and self._pending is not None:
            self._head, self._pending = self._pending, None
        if self.refusal is None and self._head.seq < up_to:
            self.refusal = Refusal(self._head.partition, self._head.seq + 1, GAP)
        return Admitted(self._head, self.refusal)


def admit_rows(
    start: ChainHead, rows: list[Mapping[str, Any]], macs: RecordMacs, up_to: int
) -> Admitted:
    walk = RecordWalk(start, macs)
    for row in rows:
        if not walk.feed(row):
            break
    return walk.finish(up_to)


class Admission:
    """Called by the Checkpointer with the heads it would sign; returns the heads it may sign:
    each as far as its records are proven, a head at its checkpoint's seq as that checkpoint
    (checked) signed it, and none for a partition with nothing new proven."""

    def __init__(
        self,
        uow_factory: Callable[[], SqlUnitOfWork],
        record_macs: Callable[[], RecordMacs | None],
        signatures: Signatures,
    ) -> None:
        self._uow_factory = uow_factory
        self._record_macs = record_macs
        self._signatures = signatures
        # Digests of checkpoints whose signature was checked: one Vault read per new checkpoint.
        self._trusted: set[str] = set()
        self._alerted: set[str] = set()

    async def __call__(
        self, heads: list[ChainHead], latest: dict[int, Checkpoint]
    ) -> list[ChainHead]:
        macs = self._record_macs()
        if macs is None:
            log.warning("no record MAC key held: no audit checkpoint is signed")
            return []
        admitted: list[ChainHead] = []
        refusals: list[Refusal] = []
        async with self._uow_factory() as uow:
            for head in heads:
                signed = _signed(latest.get(head.partition))
                result = await self._admit(uow.session, head, latest.get(head.partition), macs)
                if result.refusal is not None:
                    refusals.append(result.refusal)
                # A head at the signed seq (a heartbeat re-signing it) passes as the checkpoint
                # signed it; one beyond passes only as far as its records were proven.
                if result.head.seq > signed or (head.seq <= signed and result.refusal is None):
                    admitted.append(result.head)
        if refusals:
            await self._alarm(refusals)
        return admitted

    async def _admit(
        self, session: AsyncSession, head: ChainHead, newest: Checkpoint | None, macs: RecordMacs
    ) -> Admitted:
        start = await self._start(session, head.partition, newest)
        if isinstance(start, Refusal):
            return Admitted(ChainHead(head.partition, _signed(newest)), start)
        if head.seq <= start.seq:
            return Admitted(start)
        walk = RecordWalk(start, macs)
        rows = SqlAuditStore(session).stream_chained(head.partition, head.seq, after_seq=start.seq)
        async with contextlib.aclosing(rows):
            async for row in rows:
                if not walk.feed(row):
                    break
        return walk.finish(head.seq)

    async def _start(
        self, session: AsyncSession, partition: int, newest: Checkpoint | None
    ) -> ChainHead | Refusal:
        """Where the walk starts: the newest chained checkpoint, else the newest legacy one
        (records it covers predate record MACs), else the genesis; its signature checked."""
        if newest is None:
            legacy = [
                cp for cp in await SqlCheckpointStore(session).all() if cp.partition == partition
            ]
            newest = legacy[-1] if legacy else None
        if newest is None:
            return ChainHead(partition)
        if newest.digest() not in self._trusted:
            check = await self._signatures([(newest.payload(), newest.signature)])
            if not check(newest.payload(), newest.signature):
                return Refusal(partition, newest.seq, UNTRUSTED_CHECKPOINT)
            self._trusted.add(newest.digest())
        return ChainHead(partition, newest.seq, newest.hash)

    async def _alarm(self, refusals: list[Refusal]) -> None:
        at = datetime.now(UTC)
        alerts = [unauthenticated_record_alert(r.partition, r.seq, r.reason, at) for r in refusals]
        fresh = [a for a in alerts if a.alert_id not in self._alerted]
        if not fresh:
            return
        async with self._uow_factory() as uow:
            raised = await raise_new(uow.session, fresh)
            await uow.commit()
        self._alerted.update(a.alert_id for a in fresh)
        for refusal in refusals:
            log.error(
                "audit checkpoint refused: partition %d seq %d is not a record this service "
                "stored (%s); nothing at or beyond it is signed",
                refusal.partition,
                refusal.seq,
                refusal.reason,
            )
        log.warning("%d unauthenticated-record alerts raised", len(raised))


def _signed(checkpoint: Checkpoint | None) -> int:
    return 0 if checkpoint is None else checkpoint.seq
