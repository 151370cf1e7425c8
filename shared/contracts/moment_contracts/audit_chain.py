"""Audit chain contracts (v1): signed checkpoints of the audit store's per-partition hash chains,
and the retention horizons pruning moves them to.

Anyone holding the public key of the Transit key "audit-checkpoints" can check a checkpoint, and
so can later prove that the audit store still holds the chain it signed.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import Field

from moment_contracts.base import Contract


class CheckpointSigned(Contract):
    ce_type: ClassVar[str] = "moment.audit.checkpoint-signed.v1"

    partition: int = Field(ge=0)
    seq: int = Field(ge=1)
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    created_at: datetime
    # "vault:vN:<base64>": Ed25519 over the RFC 8785 JSON of {partition, seq, hash, created_at}.
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
    cutoff: datetime
    pruned_at: datetime
    records: int = Field(ge=0, description="records this horizon removed from the chain")
    # "vault:vN:<base64>", with the checkpoint key, over the RFC 8785 JSON of {"kind":
    # "retention-horizon", partition, seq, hash, cutoff, pruned_at, records}.
    signature: str = Field(max_length=256)
