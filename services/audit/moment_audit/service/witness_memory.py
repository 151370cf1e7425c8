"""The live witness's memory, and its comparison with the store. Pure: no I/O.

The service follows its own checkpoint stream (adapters/live_witness.py) and remembers, per
partition and checkpoint number, a fingerprint of each validly signed checkpoint and the seq it
signed. Every `witness_every_seconds` the store's chained checkpoints are compared with it
(`Comparison`, run by service/witness_watch.py): a witnessed checkpoint the store lacks is
CHECKPOINT MISSING, one it holds otherwise CHECKPOINT MISMATCH, and a stored one the stream
still lacks `grace` after it was signed is CHECKPOINT NOT WITNESSED (its outbox row was marked
sent, or deleted, so it never reached the stream). The findings are those `moment-audit verify
--witness-stream` names (service/witness.py), so an alert raised here and the same finding in
the hourly verification share one id.

Memory: 24 bytes per witnessed checkpoint in one bytearray per partition, indexed by number (a
16-byte fingerprint and the 8-byte seq), so a year of one checkpoint a minute costs about 12.6 MB
per partition. The comparison reads the store's chained checkpoints in pages and keeps one byte
per witnessed checkpoint while it runs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from moment_audit.domain.chain import GENESIS_HASH, iso_utc
from moment_audit.domain.checkpoints import Checkpoint
from moment_audit.service.verify import (
    CHECKPOINT_MISMATCH,
    CHECKPOINT_MISSING,
    CHECKPOINT_NOT_WITNESSED,
    Finding,
)
from moment_audit.service.witness import DIFFERS_DETAIL, MISSING_DETAIL

FINGERPRINT = 16
SLOT = FINGERPRINT + 8
_EMPTY = bytes(FINGERPRINT)


def fingerprint(checkpoint: Checkpoint) -> bytes:
    """Equal exactly when the signed payloads and the signatures are (service/witness.py same()):
    the fields the payload is made of, spelled as it spells them, and the signature. 128 bits of
    SHA-256: whoever holds the database cannot sign, so only a second preimage would fool it."""
    fields = [
        checkpoint.partition,
        checkpoint.number,
        checkpoint.seq,
        checkpoint.hash,
        iso_utc(checkpoint.created_at),
        checkpoint.prev or GENESIS_HASH,
        sorted(set(checkpoint.partitions)),
        checkpoint.signature,
    ]
    encoded = json.dumps(fields, separators=(",", ":")).encode()
    digest = hashlib.sha256(encoded).digest()[:FINGERPRINT]
    # The all-zero fingerprint marks an empty slot.
    return digest if digest != _EMPTY else b"\x01" + digest[1:]


@dataclass(frozen=True)
class Witnessed:
    seq: int
    fingerprint: bytes


class PartitionWitness:
    """One partition's witnessed checkpoints: slot n-1 holds number n; an empty slot is zeros."""

    def __init__(self) -> None:
        self._slots = bytearray()

    def __len__(self) -> int:
        return len(self._slots) // SLOT

    def get(self, number: int) -> Witnessed | None:
        if number < 1 or number > len(self):
            return None
        start = (number - 1) * SLOT
        held = bytes(self._slots[start : start + FINGERPRINT])
        if held == _EMPTY:
            return None
        seq = int.from_bytes(self._slots[start + FINGERPRINT : start + SLOT], "big")
        return Witnessed(seq, held)

    def put(self, number: int, seq: int, print_: bytes) -> bool:
        """Keep the first checkpoint of a number; False when another one was already kept."""
        held = self.get(number)
        if held is not None:
            return held.fingerprint == print_
        if number > len(self):
            self._slots.extend(bytes((number - len(self)) * SLOT))
        start = (number - 1) * SLOT
        self._slots[start : start + SLOT] = print_ + seq.to_bytes(8, "big")
        return True

    def numbers(self) -> Iterator[int]:
        for number in range(1, len(self) + 1):
            start = (number - 1) * SLOT
            if self._slots[start : start + FINGERPRINT] != _EMPTY:
                yield number


class Witness:
    """Every validly signed checkpoint read from the stream, by partition and number."""

    def __init__(self) -> None:
        self._partitions: dict[int, PartitionWitness] = {}
        self.checkpoints = 0
        # Validly signed checkpoints that disagree with the one kept for their number (signed
        # again after the first one's row was deleted): the first one stays the evidence.
        self.conflicts = 0

    def add(self, checkpoint: Checkpoint) -> bool:
        """Only for a checkpoint whose signature was checked. False for a conflicting one."""
        if checkpoint.number is None or checkpoint.number < 1:
            return True
        partition = self._partitions.setdefault(checkpoint.partition, PartitionWitness())
        known = partition.get(checkpoint.number) is not None
        if not partition.put(checkpoint.number, checkpoint.seq, fingerprint(checkpoint)):
            self.conflicts += 1
            return False
        self.checkpoints += 0 if known else 1
        return True

    def get(self, partition: int, number: int) -> Witnessed | None:
        held = self._partitions.get(partition)
        return None if held is None else held.get(number)

    def partitions(self) -> dict[int, PartitionWitness]:
        return dict(self._partitions)


@dataclass(frozen=True)
class Stored:
    """A chained checkpoint as the store holds it, reduced to what the comparison needs."""

    partition: int
    number: int
    seq: int
    fingerprint: bytes
    created_at: datetime

    @classmethod
    def of(cls, checkpoint: Checkpoint) -> Stored:
        return cls(
            checkpoint.partition,
            checkpoint.number or 0,
            checkpoint.seq,
            fingerprint(checkpoint),
            checkpoint.created_at,
        )


def not_witnessed_detail(number: int) -> str:
    # No count nor end: a run of hidden checkpoints that grows keeps its one alert.
    return f"number {number} and any after it stored, not on audit.checkpoints"


@dataclass
class Comparison:
    """Feed the store's chained checkpoints in (partition, number) order, then `finish()`.

    `witnessed_before`: stored checkpoints signed before this instant must be on the stream (the
    reader was at the stream's end `grace` after it)."""

    witness: Witness
    witnessed_before: datetime
    findings: list[Finding] = field(default_factory=list)
    # Witnessed checkpoints the store lacked: confirm them against a fresh read before alerting
    # (one committed, relayed and read after the store was read is not missing).
    missing: list[tuple[int, int, int]] = field(default_factory=list)
    _seen: dict[int, bytearray] = field(default_factory=dict)
    _unwitnessed_run: tuple[int, int] | None = None

    def feed(self, row: Stored) -> None:
        held = self.witness.get(row.partition, row.number)
        if held is None:
            self._unwitnessed(row)
            return
        self._run_ends()
        seen = self._seen.setdefault(row.partition, bytearray())
        if row.number > len(seen):
            seen.extend(bytes(row.number - len(seen)))
        seen[row.number - 1] = 1
        if held.fingerprint != row.fingerprint:
            self._found(Finding(row.partition, held.seq, CHECKPOINT_MISMATCH, DIFFERS_DETAIL))

    def _unwitnessed(self, row: Stored) -> None:
        if _aware(row.created_at) >= self.witnessed_before:
            self._run_ends()
            return
        run = self._unwitnessed_run
        if run is not None and run == (row.partition, row.number - 1):
            self._unwitnessed_run = (row.partition, row.number)
            return
        self._unwitnessed_run = (row.partition, row.number)
        detail = not_witnessed_detail(row.number)
        self._found(Finding(row.partition, row.seq, CHECKPOINT_NOT_WITNESSED, detail))

    def _run_ends(self) -> None:
        self._unwitnessed_run = None

    def _found(self, finding: Finding) -> None:
        if finding not in self.findings:
            self.findings.append(finding)

    def finish(self) -> list[Finding]:
        """Every finding but the missing ones, which `missing` lists to be confirmed."""
        for partition, held in sorted(self.witness.partitions().items()):
            seen = self._seen.get(partition, bytearray())
            for number in held.numbers():
                if number > len(seen) or not seen[number - 1]:
                    witnessed = held.get(number)
                    assert witnessed is not None
                    self.missing.append((partition, number, witnessed.seq))
        return sorted(self.findings)


def missing_findings(
    missing: list[tuple[int, int, int]], present: set[tuple[int, int]]
) -> list[Finding]:
    """CHECKPOINT MISSING for each witnessed checkpoint a second read of the store lacks too."""
    found = {
        Finding(partition, seq, CHECKPOINT_MISSING, MISSING_DETAIL)
        for partition, number, seq in missing
        if (partition, number) not in present
    }
    return sorted(found)


def _aware(at: datetime) -> datetime:
    # SQLite hands back naive datetimes; every instant the service writes is UTC.
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
