"""What verify finds: the kinds of finding, and how each is worded. Pure.

`service/verify.py` re-exports all of it; `service/checkpoint_chain.py` uses it too.
"""

from __future__ import annotations

from dataclasses import dataclass

MODIFIED = "MODIFIED"
DELETED = "DELETED"
INSERTED = "INSERTED"
REORDERED = "REORDERED"
TRUNCATED = "TRUNCATED"
BAD_SIGNATURE = "BAD SIGNATURE"
CHECKPOINT_MISMATCH = "CHECKPOINT MISMATCH"
UNGUARDED_COLUMN = "UNGUARDED COLUMN"
# A finding about the store's schema rather than one chain carries this partition.
SCHEMA = -1
BAD_HORIZON = "BAD HORIZON"
# Issue 9: findings that need no trust in anything the database derives.
CHECKPOINT_MISSING = "CHECKPOINT MISSING"  # a gap in a partition's checkpoint numbers, or witnessed
STALE_CHECKPOINT = "STALE CHECKPOINT"  # newest checkpoint older than the cadence allows
PARTITION_MISSING = "PARTITION MISSING"  # a signed partition set names a partition that is gone
COLUMN_MISMATCH = "COLUMN MISMATCH"  # a query column disagrees with the row's hashed document
DUPLICATE_EVENT = "DUPLICATE EVENT"  # (source, event id) stored more than once
UNAUTHENTICATED_RECORD = "UNAUTHENTICATED RECORD"  # no valid ingest MAC (needs the Vault key)
GUARD_MISSING = "GUARD MISSING"  # a trigger, constraint or grant the append-only promise rests on
CHECKPOINT_NOT_WITNESSED = "CHECKPOINT NOT WITNESSED"  # stored, but kept off audit.checkpoints


@dataclass(frozen=True, order=True)
class Finding:
    partition: int
    seq: int
    kind: str
    detail: str = ""

    def line(self) -> str:
        suffix = f" ({self.detail})" if self.detail else ""
        if self.partition == SCHEMA:
            return f"schema: {self.kind}{suffix}"
        return f"partition {self.partition} seq {self.seq}: {self.kind}{suffix}"


@dataclass(frozen=True)
class Uncovered:
    """Records past a partition's newest validly signed checkpoint: stored, not yet vouched for."""

    partition: int
    after_seq: int
    records: int

    def line(self) -> str:
        return (
            f"not yet covered: partition {self.partition}, {self.records} records "
            f"after seq {self.after_seq}"
        )
