"""What the checkpoints say about themselves: their numbering, their links, the partitions they
name, and their age. Pure: `ChainVerifier` (service/verify.py) feeds it checkpoints whose
signatures it has checked.

Chained checkpoints (issue 9) are judged as a chain of their own, per partition: numbers run
from 1 without a gap (else CHECKPOINT MISSING, naming the numbers), and each one's `prev` is the
digest of the one before (else CHECKPOINT MISMATCH). A partition named in a validly signed
checkpoint's partition set with neither records nor a checkpoint left is PARTITION MISSING; with
records but no checkpoint it is CHECKPOINT MISSING (the checkpointer names a partition only once
it has a checkpoint, stored in the same transaction or before). With `now` and `max_age` given,
a partition whose newest validly signed checkpoint is older than `max_age` is a STALE CHECKPOINT
(the service signs a heartbeat every `every_seconds` even when idle), and so is a partition with
records, no checkpoint and no signed set naming it, when the store holds no validly signed
checkpoint at all or its newest is older than `max_age` ("never checkpointed"): a live service
would have signed it by then. Such a partition whose records arrived after a recent checkpoint
only gets the "no checkpoints" warning: the checkpointer signs it within `every_seconds`.
Records past a partition's newest validly signed checkpoint are counted as not yet covered
(`Report.uncovered`), never as verified. Deleting the newest checkpoints (and records after
them, or everything) within `max_age` can only be caught by a witness of the signed
checkpoints. Unchained checkpoints (before migration 0008) are judged as before, and count for
coverage and age but not for the numbering.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from moment_audit.domain.chain import GENESIS_HASH, iso_utc
from moment_audit.domain.checkpoints import Checkpoint
from moment_audit.service.verdict import (
    CHECKPOINT_MISMATCH,
    CHECKPOINT_MISSING,
    PARTITION_MISSING,
    STALE_CHECKPOINT,
    Finding,
)


def _utc(at: datetime) -> datetime:
    # SQLite hands back naive datetimes; they were stored as UTC.
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _numbers(first: int, last: int) -> str:
    return f"number {first}" if first == last else f"numbers {first}-{last}"


class CheckpointChain:
    """`valid`: the checkpoints whose signatures hold. With `now` and `max_age`, a checkpoint
    older than `max_age` at `now` is stale. `whole_store` False: fed part of the store (prune
    verifies one partition), whose checkpoints' signed partition sets name others."""

    def __init__(
        self,
        valid: Iterable[Checkpoint],
        now: datetime | None = None,
        max_age: timedelta | None = None,
        whole_store: bool = True,
    ) -> None:
        self._valid = set(valid)
        self._stale_before = None if now is None or not max_age else _utc(now) - max_age
        self._max_age = max_age
        self._whole_store = whole_store

    def judge(self, partition: int, mine: list[Checkpoint]) -> list[Finding]:
        """A partition's checkpoints: their chain, and the newest one's age."""
        return self._judge_chain(mine) + self._judge_age(partition, mine)

    def _judge_chain(self, mine: list[Checkpoint]) -> list[Finding]:
        """Chained checkpoints: numbered from 1 without a gap, each naming its predecessor."""
        found: list[Finding] = []
        previous: Checkpoint | None = None
        for cp in sorted((c for c in mine if c.number is not None), key=lambda c: c.number or 0):
            number = cp.number or 0
            if previous is not None and number == previous.number:
                if cp.digest() != previous.digest():
                    detail = f"two checkpoints numbered {number}"
                    found.append(Finding(cp.partition, cp.seq, CHECKPOINT_MISMATCH, detail))
                continue
            expected = 1 if previous is None else (previous.number or 0) + 1
            if number > expected:
                detail = _numbers(expected, number - 1)
                found.append(Finding(cp.partition, cp.seq, CHECKPOINT_MISSING, detail))
            problem = self._link_problem(previous if number == expected else None, cp)
            if problem:
                found.append(Finding(cp.partition, cp.seq, CHECKPOINT_MISMATCH, problem))
            previous = cp
        return found

    def _link_problem(self, before: Checkpoint | None, cp: Checkpoint) -> str:
        # A checkpoint whose signature fails is named BAD SIGNATURE, and says nothing here.
        if cp not in self._valid:
            return ""
        if cp.number == 1:
            return "" if cp.prev == GENESIS_HASH else "checkpoint 1 does not start the chain"
        if before is None or before not in self._valid or cp.prev == before.digest():
            return ""
        return f"checkpoint {cp.number} does not name checkpoint {before.number}'s digest"

    def named(self) -> set[int]:
        """Every partition a validly signed checkpoint says the store held."""
        if not self._whole_store:
            return set()
        return {p for cp in self._valid for p in cp.partitions}

    def _judge_age(self, partition: int, mine: list[Checkpoint]) -> list[Finding]:
        if self._stale_before is None or self._max_age is None:
            return []
        valid = [c for c in mine if c in self._valid]
        if not valid:
            return []
        newest = max(valid, key=lambda c: (_utc(c.created_at), c.number or 0))
        if _utc(newest.created_at) >= self._stale_before:
            return []
        label = "unnumbered" if newest.number is None else f"number {newest.number}"
        detail = (
            f"newest checkpoint ({label}) signed at {iso_utc(newest.created_at)}, over "
            f"{self._max_age.total_seconds():g} s before verify"
        )
        return [Finding(partition, newest.seq, STALE_CHECKPOINT, detail)]

    def _store_is_stale(self) -> bool:
        """No validly signed checkpoint at all, or none younger than the allowed age."""
        if self._stale_before is None:
            return False
        newest = max((_utc(c.created_at) for c in self._valid), default=None)
        return newest is None or newest < self._stale_before

    def judge_unsigned(
        self, partition: int, first_seq: int, records: int, named: set[int]
    ) -> list[Finding] | None:
        """A partition without a single checkpoint, holding `records` from `first_seq` on: its
        findings, or None when it only deserves a "no checkpoints" warning."""
        if partition in named and not records:
            detail = "named by signed checkpoints; no record and no checkpoint left"
            return [Finding(partition, 0, PARTITION_MISSING, detail)]
        if not records:
            return []
        if partition in named:
            detail = "all of them, though signed checkpoints name the partition"
            return [Finding(partition, first_seq, CHECKPOINT_MISSING, detail)]
        if self._store_is_stale():
            return [Finding(partition, first_seq, STALE_CHECKPOINT, "never checkpointed")]
        return None
