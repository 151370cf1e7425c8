"""The retention horizons table, the queries pruning needs, and signature checks through Vault."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from moment_audit.adapters.checkpoints import announce
from moment_audit.adapters.orm import (
    audit_chain_heads,
    audit_records,
    audit_retention_horizons,
)
from moment_audit.domain.retention import Horizon
from moment_audit.service.verify import SignatureCheck, offline_signature_check
from moment_contracts.audit_chain import RetentionApplied
from moment_crypto.errors import VaultPermissionDenied
from moment_crypto.vault import VaultClient

_H = audit_retention_horizons.c
_R = audit_records.c


class SqlRetentionStore:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def horizons(self) -> list[Horizon]:
        """Every horizon, by partition and seq (the newest of a partition last)."""
        rows = await self._session.execute(
            select(audit_retention_horizons).order_by(_H.chain_partition, _H.seq)
        )
        return [
            Horizon(r.chain_partition, r.seq, r.hash, r.cutoff, r.pruned_at, r.records, r.signature)
            for r in rows
        ]

    async def partitions(self) -> set[int]:
        """Every partition with a chain (its head stays when all of its records are pruned)."""
        rows = await self._session.scalars(select(audit_chain_heads.c.chain_partition))
        return {int(p) for p in rows}

    async def first_young_seqs(self, cutoff: datetime) -> dict[int, int]:
        """Per partition, the first record stored or dated at or after `cutoff`."""
        rows = await self._session.execute(
            select(_R.chain_partition, func.min(_R.seq))
            .where(or_(_R.received_at >= cutoff, _R.occurred_at >= cutoff))
            .group_by(_R.chain_partition)
        )
        return {int(partition): int(seq) for partition, seq in rows}

    async def count_up_to(self, partition: int, seq: int) -> int:
        found = await self._session.scalar(
            select(func.count()).where(_R.chain_partition == partition, _R.seq <= seq)
        )
        return int(found or 0)

    async def add(self, horizon: Horizon) -> None:
        """Store the horizon and announce it on audit.checkpoints, in the caller's transaction."""
        signed = {
            "seq": horizon.seq,
            "hash": horizon.hash,
            "cutoff": horizon.cutoff,
            "pruned_at": horizon.pruned_at,
            "records": horizon.records,
            "signature": horizon.signature,
        }
        await self._session.execute(
            insert(audit_retention_horizons).values(chain_partition=horizon.partition, **signed)
        )
        await announce(
            self._session,
            RetentionApplied(partition=horizon.partition, **signed),
            horizon.partition,
        )

    async def delete_batch(self, partition: int, up_to: int, size: int) -> int:
        """Delete up to `size` of the oldest records at or below `up_to`; how many went."""
        oldest = (
            select(_R.id)
            .where(_R.chain_partition == partition, _R.seq <= up_to)
            .order_by(_R.seq)
            .limit(size)
        )
        result = await self._session.execute(delete(audit_records).where(_R.id.in_(oldest)))
        return int(getattr(result, "rowcount", 0) or 0)


class TransitSignatures:
    """The checkpoint key in Vault Transit: signs horizons, checks checkpoints and horizons."""

    def __init__(self, vault: VaultClient, key_name: str) -> None:
        self._vault = vault
        self._key = key_name

    async def checker(self, signed: Iterable[tuple[bytes, str]]) -> SignatureCheck:
        """Offline with the public keys; one Vault call per signature if they may not be read."""
        try:
            return offline_signature_check(await self._vault.transit_public_keys(self._key))
        except VaultPermissionDenied:
            pass
        verdicts = {
            (payload, signature): await self._vault.verify(self._key, payload, signature)
            for payload, signature in signed
        }
        return lambda payload, signature: verdicts.get((payload, signature), False)

    async def sign(self, payload: bytes) -> str:
        return await self._vault.sign(self._key, payload)
