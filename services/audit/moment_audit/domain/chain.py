"""Per-partition hash chains over audit records, and the payload a checkpoint signs. Pure: no I/O.

Each record's hash covers its content, its sequence number, its partition and the previous
record's hash, in RFC 8785 canonical JSON: any edit, deletion, insertion or reordering changes
a hash that later records (and signed checkpoints) commit to.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import rfc8785

GENESIS_HASH = "0" * 64

# The stored columns a record's hash commits to (besides seq, prev_hash and partition).
CONTENT_FIELDS: tuple[str, ...] = (
    "source",
    "event_id",
    "action",
    "actor_id",
    "actor_role",
    "subject_id",
    "fields",
    "purpose",
    "outcome",
    "occurred_at",
    "request_id",
    "trace_id",
    "source_ref",
)


@dataclass(frozen=True)
class ChainHead:
    """The last link of one partition's chain: seq 0 and the genesis hash before any record."""

    partition: int
    seq: int = 0
    hash: str = GENESIS_HASH


@dataclass(frozen=True)
class ChainLink:
    partition: int
    seq: int
    prev_hash: str
    record_hash: str

    @property
    def head(self) -> ChainHead:
        return ChainHead(self.partition, self.seq, self.record_hash)


def iso_utc(moment: datetime) -> str:
    """One spelling per instant: SQLite hands back naive UTC, PostgreSQL its session's zone."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="microseconds")


def content_of(record: Mapping[str, Any]) -> dict[str, Any]:
    """The hashed content of a stored (or about to be stored) record."""
    content = {name: record.get(name) for name in CONTENT_FIELDS}
    occurred = content["occurred_at"]
    if isinstance(occurred, datetime):
        content["occurred_at"] = iso_utc(occurred)
    content["fields"] = list(content["fields"] or ())
    return content


def record_hash(content: Mapping[str, Any], *, partition: int, seq: int, prev_hash: str) -> str:
    document = {**content, "seq": seq, "prev_hash": prev_hash, "partition": partition}
    return hashlib.sha256(rfc8785.dumps(document)).hexdigest()


def extend(head: ChainHead, record: Mapping[str, Any]) -> ChainLink:
    """The link a new record gets after `head`."""
    seq = head.seq + 1
    digest = record_hash(content_of(record), partition=head.partition, seq=seq, prev_hash=head.hash)
    return ChainLink(head.partition, seq, head.hash, digest)


def checkpoint_payload(partition: int, seq: int, hash_: str, created_at: datetime) -> bytes:
    """The bytes a checkpoint signature covers."""
    return rfc8785.dumps(
        {"partition": partition, "seq": seq, "hash": hash_, "created_at": iso_utc(created_at)}
    )
