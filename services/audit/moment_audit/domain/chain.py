"""Per-partition hash chains over audit records, and the payload a checkpoint signs. Pure: no I/O.

Each record's document is RFC 8785 canonical JSON of its content, its producer's sequence number,
its own sequence number, its partition and the previous record's hash; its record_hash is the
SHA-256 of those bytes. Any edit, deletion, insertion or reordering changes a hash that later
records (and signed checkpoints) commit to. The store keeps the document itself, so checking a
record is one SHA-256 over stored bytes, with no re-encoding.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import rfc8785

GENESIS_HASH = "0" * 64

# The content a record's hash commits to (besides seq, prev_hash and partition).
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
    "producer_seq",
)

# I-JSON's exact integer range: RFC 8785 refuses integers outside it.
_MAX_EXACT_INT = 2**53 - 1

# For strings, integers, booleans, null, arrays and objects with ASCII keys, RFC 8785 output is
# what this encoder writes (same escapes, no whitespace, keys sorted), about six times faster than
# the pure-Python rfc8785 package. tests/audit/unit/test_canonical.py proves it byte for byte.
_FAST = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)


_SCALARS = frozenset({str, bool, type(None)})


def fast_encodable(value: object) -> bool:
    """True when the fast encoder's output is exactly RFC 8785's for `value`."""
    kind = type(value)
    if kind in _SCALARS:
        return True
    if kind is int:
        return -_MAX_EXACT_INT <= value <= _MAX_EXACT_INT  # type: ignore[operator]
    if kind is list:
        items: Any = value
    elif kind is dict:
        for key in value:  # type: ignore[attr-defined]
            # Python sorts keys by code point, RFC 8785 by UTF-16 unit: equal for ASCII only.
            if type(key) is not str or not key.isascii():
                return False
        items = value.values()  # type: ignore[attr-defined]
    else:
        return False
    # A loop rather than all(): this runs for every record ingested.
    for item in items:  # noqa: SIM110
        if type(item) not in _SCALARS and not fast_encodable(item):
            return False
    return True


def canonical(document: Mapping[str, Any]) -> str:
    """RFC 8785 canonical JSON of `document`, as text (its UTF-8 bytes are what gets hashed)."""
    if type(document) is dict and fast_encodable(document):
        return _FAST.encode(document)
    return rfc8785.dumps(document).decode()


def digest(document: str | bytes) -> str:
    """The record_hash of a document, as stored text or as its UTF-8 bytes."""
    return hashlib.sha256(document.encode() if type(document) is str else document).hexdigest()  # type: ignore[arg-type]


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
    document: str = ""

    @property
    def head(self) -> ChainHead:
        return ChainHead(self.partition, self.seq, self.record_hash)


def iso_utc(moment: datetime) -> str:
    """One spelling per instant: SQLite hands back naive UTC, PostgreSQL its session's zone."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="microseconds")


def content_of(record: Mapping[str, Any]) -> dict[str, Any]:
    """The hashed content of a record about to be stored (or of a stored row's columns)."""
    content = {name: record.get(name) for name in CONTENT_FIELDS}
    occurred = content["occurred_at"]
    if isinstance(occurred, datetime):
        content["occurred_at"] = iso_utc(occurred)
    content["fields"] = list(content["fields"] or ())
    return content


def document_of(content: Mapping[str, Any], *, partition: int, seq: int, prev_hash: str) -> str:
    """The canonical document a record stores and its record_hash covers."""
    return canonical({**content, "seq": seq, "prev_hash": prev_hash, "partition": partition})


def record_hash(content: Mapping[str, Any], *, partition: int, seq: int, prev_hash: str) -> str:
    return digest(document_of(content, partition=partition, seq=seq, prev_hash=prev_hash))


def hash_at_seq(document: str | bytes, seq: int) -> str | None:
    """The hash `document` would have had at `seq`; None if that cannot be computed."""
    try:
        parsed = json.loads(document)
        if not isinstance(parsed, dict):
            return None
        return digest(canonical({**parsed, "seq": seq}))
    except (ValueError, UnicodeError):  # rfc8785's CanonicalizationError is a ValueError
        return None


def extend(head: ChainHead, record: Mapping[str, Any]) -> ChainLink:
    """The link a new record gets after `head`, with the document it stores."""
    seq = head.seq + 1
    document = document_of(
        content_of(record), partition=head.partition, seq=seq, prev_hash=head.hash
    )
    return ChainLink(head.partition, seq, head.hash, digest(document), document)


def checkpoint_payload(partition: int, seq: int, hash_: str, created_at: datetime) -> bytes:
    """The bytes a checkpoint signature covers."""
    return rfc8785.dumps(
        {"partition": partition, "seq": seq, "hash": hash_, "created_at": iso_utc(created_at)}
    )
