"""Prune records older than the retention period while every remaining chain still verifies.

Per partition: pick the newest checkpoint signed before the cut-off whose records (and all before
them) are older than it, verify the chain from the current start up to that checkpoint, sign a
horizon at it, store the horizon with its RetentionApplied event in one transaction, then delete
the records at or below it in short batches. Once the horizon is committed the records below it
are pruned in the chain's eyes, so an interrupted run loses nothing: the next run (or this one)
finishes the deletion, and verify meanwhile skips those records with a warning.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from moment_audit.adapters.checkpoints import SqlCheckpointStore
from moment_audit.adapters.repositories import SqlAuditStore
from moment_audit.adapters.retention import SqlRetentionStore
from moment_audit.domain.chain import iso_utc
from moment_audit.domain.checkpoints import Checkpoint
from moment_audit.domain.retention import Horizon, choose_checkpoint, horizon_payload
from moment_audit.service.verify import (
    ChainVerifier,
    Finding,
    SignatureCheck,
    trusted_horizons,
)
from moment_persistence.unit_of_work import SqlUnitOfWork


class Signatures(Protocol):
    """The checkpoint key: checks signatures, and signs horizons."""

    async def checker(self, signed: Iterable[tuple[bytes, str]]) -> SignatureCheck: ...

    async def sign(self, payload: bytes) -> str: ...


@dataclass
class PartitionPrune:
    """What pruning did (or, in a dry run, would do) to one partition."""

    partition: int
    # The chain started after this seq before this run (0: at genesis).
    after_seq: int
    # The new horizon; None when no checkpoint is old enough or the partition was refused.
    to_seq: int | None = None
    checkpoint_signed_at: datetime | None = None
    # Records the new horizon removes from the chain.
    records: int = 0
    # Rows deleted (in a dry run: that would be), including any an interrupted run left behind.
    deleted: int = 0
    # Why the partition was not pruned: its chain does not verify up to the checkpoint.
    findings: list[Finding] = field(default_factory=list)

    def status(self, *, dry_run: bool = False) -> str:
        if self.findings:
            return "refused"
        if self.to_seq is None and not self.deleted:
            return "nothing to prune"
        return "would prune" if dry_run else "pruned"

    def as_json(self, *, dry_run: bool = False) -> dict[str, Any]:
        signed_at = self.checkpoint_signed_at
        return {
            "partition": self.partition,
            "after_seq": self.after_seq,
            "horizon_seq": self.to_seq,
            "checkpoint_signed_at": None if signed_at is None else iso_utc(signed_at),
            "records": self.records,
            "deleted": self.deleted,
            "status": self.status(dry_run=dry_run),
            "findings": [
                {"seq": f.seq, "finding": f.kind, "detail": f.detail} for f in self.findings
            ],
        }


@dataclass
class PruneReport:
    cutoff: datetime
    dry_run: bool
    partitions: list[PartitionPrune] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(p.findings for p in self.partitions)

    @property
    def records(self) -> int:
        return sum(p.records for p in self.partitions)

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "dry_run": self.dry_run,
            "cutoff": iso_utc(self.cutoff),
            "records": self.records,
            "deleted": sum(p.deleted for p in self.partitions),
            "partitions": [p.as_json(dry_run=self.dry_run) for p in self.partitions],
        }


@dataclass(frozen=True)
class _Store:
    """What the run reads once, before deciding anything."""

    checkpoints: list[Checkpoint]
    horizons: list[Horizon]
    young: dict[int, int]
    partitions: set[int]


class Pruner:
    def __init__(
        self,
        uow_factory: Callable[[], SqlUnitOfWork],
        signatures: Signatures,
        batch_size: int,
    ) -> None:
        self._uow = uow_factory
        self._signatures = signatures
        self._batch = batch_size

    async def run(self, cutoff: datetime, *, dry_run: bool = False) -> PruneReport:
        store = await self._read(cutoff)
        signed = [(c.payload(), c.signature) for c in store.checkpoints] + [
            (horizon_payload(h), h.signature) for h in store.horizons
        ]
        check = await self._signatures.checker(signed)
        starts, bad = trusted_horizons(store.horizons, store.checkpoints, check)
        report = PruneReport(cutoff, dry_run)
        for partition in sorted(store.partitions):
            start = starts.get(partition)
            outcome = PartitionPrune(partition, 0 if start is None else start.seq)
            # A horizon that does not verify is tampering: prune nothing more there.
            outcome.findings = [f for f in bad if f.partition == partition]
            if not outcome.findings:
                await self._prune(outcome, store, start, check, cutoff, dry_run=dry_run)
            report.partitions.append(outcome)
        return report

    async def _read(self, cutoff: datetime) -> _Store:
        async with self._uow() as uow:
            retention = SqlRetentionStore(uow.session)
            checkpoints = await SqlCheckpointStore(uow.session).all()
            return _Store(
                checkpoints,
                await retention.horizons(),
                await retention.first_young_seqs(cutoff),
                await retention.partitions() | {c.partition for c in checkpoints},
            )

    async def _prune(
        self,
        outcome: PartitionPrune,
        store: _Store,
        start: Horizon | None,
        check: SignatureCheck,
        cutoff: datetime,
        *,
        dry_run: bool,
    ) -> None:
        mine = [c for c in store.checkpoints if c.partition == outcome.partition]
        young = store.young.get(outcome.partition)
        checkpoint = choose_checkpoint(mine, cutoff, outcome.after_seq, young)
        if checkpoint is not None:
            outcome.findings = await self._verify_up_to(checkpoint, mine, start, check)
            if outcome.findings:
                return
            outcome.to_seq = checkpoint.seq
            outcome.checkpoint_signed_at = checkpoint.created_at
            outcome.records = checkpoint.seq - outcome.after_seq
            if not dry_run:
                await self._apply(checkpoint, cutoff, outcome.records)
        up_to = outcome.to_seq or outcome.after_seq
        if up_to and dry_run:
            outcome.deleted = await self._count(outcome.partition, up_to)
        elif up_to:
            outcome.deleted = await self._delete(outcome.partition, up_to)

    async def _verify_up_to(
        self,
        checkpoint: Checkpoint,
        mine: list[Checkpoint],
        start: Horizon | None,
        check: SignatureCheck,
    ) -> list[Finding]:
        """The findings on the chain from its current start to `checkpoint`, which must be its
        end: a shorter chain is TRUNCATED, another record there a CHECKPOINT MISMATCH."""
        partition, seq = checkpoint.partition, checkpoint.seq
        verifier = ChainVerifier(
            [c for c in mine if c.seq <= seq],
            check,
            {partition: seq},
            [start] if start else [],
            whole_store=False,
        )
        async with self._uow() as uow:
            async for row in SqlAuditStore(uow.session).stream_chained(partition, seq):
                verifier.feed(row)
        return verifier.finish().findings

    async def _apply(self, checkpoint: Checkpoint, cutoff: datetime, records: int) -> None:
        unsigned = Horizon(
            checkpoint.partition,
            checkpoint.seq,
            checkpoint.hash,
            cutoff,
            datetime.now(UTC),
            records,
        )
        # Signed outside the transaction: no lock is held across a Vault call.
        signature = await self._signatures.sign(horizon_payload(unsigned))
        horizon = replace(unsigned, signature=signature)
        async with self._uow() as uow:
            await SqlRetentionStore(uow.session).add(horizon)
            await uow.commit()

    async def _count(self, partition: int, up_to: int) -> int:
        async with self._uow() as uow:
            return await SqlRetentionStore(uow.session).count_up_to(partition, up_to)

    async def _delete(self, partition: int, up_to: int) -> int:
        deleted = 0
        while True:
            async with self._uow() as uow:
                batch = await SqlRetentionStore(uow.session).delete_batch(
                    partition, up_to, self._batch
                )
                await uow.commit()
            deleted += batch
            if batch < self._batch:
                return deleted
