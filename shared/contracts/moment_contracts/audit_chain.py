"""Audit chain contracts (v1): signed checkpoints of the audit store's per-partition hash chains,
and the retention horizons pruning moves them to.

Anyone holding the public key of the Transit key "audit-checkpoints" can check a checkpoint, and
so can later prove that the audit store still holds the chain it signed.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from moment_contracts.base import Contract, Timestamp


class CheckpointSigned(Contract):
    """A chained checkpoint: what a witness keeps to hold the audit store to what it signed.

    The signature covers the RFC 8785 JSON of {"kind": "moment.audit.checkpoint.v2", partition,
    number, seq, hash, created_at, prev, partitions} (docs/contract.md). `number` counts the
    partition's checkpoints from 1 and `prev` is the SHA-256 of the previous one's signed bytes
    (64 zeros before the first), so a witness notices a checkpoint that went missing; a heartbeat
    repeats seq and hash with a new number.
    """

    ce_type: ClassVar[str] = "moment.audit.checkpoint-signed.v2"

    partition: int = Field(ge=0)
    number: int = Field(ge=1)
    seq: int = Field(ge=1)
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    created_at: Timestamp
    prev: str = Field(pattern=r"^[0-9a-f]{64}$")
    # Every partition the store held when this was signed, sorted.
    partitions: list[int] = Field(max_length=10_000)
    # "vault:vN:<base64>": Ed25519 over the payload above.
    signature: str = Field(max_length=256)


class RetentionApplied(Contract):
    """A partition's chain now starts after `seq`: the records up to it were pruned.

    `seq` and `hash` are those of a checkpoint signed before `cutoff`, so a verifier holding that
    CheckpointSigned can check the rest of the chain from here without the pruned records.
    """

    ce_type: ClassVar[str] = "moment.audit.retention-applied.v1"

    partition: int = Field(ge=0)
    seq: int = Field(ge=1)
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    # Every pruned record was stored, and occurred, before this instant.
    cutoff: Timestamp
    pruned_at: Timestamp
    records: int = Field(ge=0, description="records this horizon removed from the chain")
    # "vault:vN:<base64>", with the checkpoint key, over the RFC 8785 JSON of {"kind":
    # "retention-horizon", partition, seq, hash, cutoff, pruned_at, records}.
    signature: str = Field(max_length=256)
