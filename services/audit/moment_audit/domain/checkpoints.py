"""Signed checkpoints of the per-partition chains, and the chain the checkpoints form. Pure.

A checkpoint signs a partition's chain head (seq and record hash) at an instant. Since migration
0008 each one also signs its place in a chain of its own: `number` counts the partition's
checkpoints from 1, `prev` is the digest of the partition's previous checkpoint (GENESIS_HASH
before the first), and `partitions` is every partition the store held when it was signed. So
removing a checkpoint breaks the numbering and the next one's `prev`, and a partition that
vanished whole is named by every other partition's checkpoints. A heartbeat is a checkpoint
over an unchanged head: it proves the service was alive and saw nothing newer.

Checkpoints from before 0008 (`number` None) sign the v1 payload and are not chained.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import rfc8785

from moment_audit.domain.chain import GENESIS_HASH, checkpoint_payload, iso_utc

# Kept apart from every other signed payload's domain, so no signature can pass for another kind.
CHECKPOINT_V2 = "moment.audit.checkpoint.v2"


def chained_payload(
    *,
    partition: int,
    number: int,
    seq: int,
    hash_: str,
    created_at: datetime,
    prev: str,
    partitions: tuple[int, ...],
) -> bytes:
    """The bytes a chained (v2) checkpoint's signature covers: RFC 8785 JSON."""
    return rfc8785.dumps(
        {
            "kind": CHECKPOINT_V2,
            "partition": partition,
            "number": number,
            "seq": seq,
            "hash": hash_,
            "created_at": iso_utc(created_at),
            "prev": prev,
            "partitions": sorted(set(partitions)),
        }
    )


@dataclass(frozen=True)
class Checkpoint:
    partition: int
    seq: int
    hash: str
    created_at: datetime
    signature: str
    # None on an unchained checkpoint from before migration 0008.
    number: int | None = None
    prev: str | None = None
    partitions: tuple[int, ...] = ()

    @property
    def chained(self) -> bool:
        return self.number is not None

    def payload(self) -> bytes:
        """What the signature covers."""
        if self.number is None:
            return checkpoint_payload(self.partition, self.seq, self.hash, self.created_at)
        return chained_payload(
            partition=self.partition,
            number=self.number,
            seq=self.seq,
            hash_=self.hash,
            created_at=self.created_at,
            prev=self.prev or GENESIS_HASH,
            partitions=self.partitions,
        )

    def digest(self) -> str:
        """What the partition's next checkpoint names as `prev`."""
        return hashlib.sha256(self.payload()).hexdigest()
