"""Audit chain contracts (v1): signed checkpoints of the audit store's per-partition hash chains.

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
