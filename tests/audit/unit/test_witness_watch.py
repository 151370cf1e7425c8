"""The live witness's memory and its comparison with the store. Pure."""

from __future__ import annotations

import dataclasses
from datetime import timedelta, timezone

from moment_audit.domain.checkpoints import Checkpoint
from moment_audit.service.verify import (
    CHECKPOINT_MISMATCH,
    CHECKPOINT_MISSING,
    CHECKPOINT_NOT_WITNESSED,
    Finding,
)
from moment_audit.service.witness import (
    DIFFERS_DETAIL,
    MISSING_DETAIL,
    judge_witnessed,
    same,
)
from moment_audit.service.witness_memory import (
    SLOT,
    Comparison,
    PartitionWitness,
    Stored,
    Witness,
    fingerprint,
    missing_findings,
    not_witnessed_detail,
)
from tests.audit.unit.test_chain import CHECK, T0
from tests.audit.unit.test_witness import signed

# Every checkpoint of these tests was signed before this: all must be on the stream.
LATE = T0 + timedelta(days=1)
HOURS_2 = timedelta(hours=2)


def chain_of(partition: int, count: int) -> list[Checkpoint]:
    return [signed(partition, n, 3 * n, f"{partition}{n:063x}") for n in range(1, count + 1)]


def witness_of(*checkpoints: Checkpoint) -> Witness:
    witness = Witness()
    for checkpoint in checkpoints:
        assert witness.add(checkpoint)
    return witness


def compare(
    witness: Witness, stored: list[Checkpoint], before: object = LATE
) -> tuple[list[Finding], Comparison]:
    comparison = Comparison(witness, before)  # type: ignore[arg-type]
    for checkpoint in sorted(stored, key=lambda c: (c.partition, c.number or 0)):
        comparison.feed(Stored.of(checkpoint))
    return comparison.finish(), comparison


def test_the_fingerprint_tells_apart_what_same_tells_apart() -> None:
    a, b = chain_of(0, 2)
    variants = [
        dataclasses.replace(a, seq=a.seq + 1),
        dataclasses.replace(a, hash="f" * 64),
        dataclasses.replace(a, created_at=a.created_at + timedelta(microseconds=1)),
        dataclasses.replace(a, prev="e" * 64),
        dataclasses.replace(a, partitions=(0, 1)),
        dataclasses.replace(a, signature=b.signature),
        dataclasses.replace(a, number=2),
        dataclasses.replace(a, partition=1),
    ]
    for variant in variants:
        assert not same(a, variant)
        assert fingerprint(a) != fingerprint(variant)
    # Spelled differently, signed the same: a repeated partition, a datetime in another zone.
    equal = dataclasses.replace(a, partitions=(0, 0))
    elsewhere = dataclasses.replace(a, created_at=a.created_at.astimezone(timezone(HOURS_2)))
    for variant in (equal, elsewhere):
        assert same(a, variant)
        assert fingerprint(a) == fingerprint(variant)
    assert len(fingerprint(a)) == 16


def test_a_partition_witness_keeps_24_bytes_per_number_and_the_first_checkpoint() -> None:
    held = PartitionWitness()
    assert held.get(1) is None
    assert held.put(3, 9, b"\x07" * 16)
    assert len(held) == 3
    assert held.get(1) is None
    assert held.get(2) is None
    witnessed = held.get(3)
    assert witnessed is not None
    assert (witnessed.seq, witnessed.fingerprint) == (9, b"\x07" * 16)
    assert held.put(3, 9, b"\x07" * 16), "the same checkpoint read again (relayed twice)"
    assert not held.put(3, 10, b"\x08" * 16), "another one for the same number"
    assert held.get(3) == witnessed
    assert held.put(1, 3, b"\x01" * 16)
    assert list(held.numbers()) == [1, 3]
    assert len(held._slots) == 3 * SLOT == 72


def test_a_conflicting_checkpoint_is_counted_and_the_first_kept() -> None:
    first = chain_of(0, 1)[0]
    again = signed(0, 1, 3, first.hash, minutes=9)
    witness = witness_of(first)
    assert not witness.add(again)
    assert (witness.checkpoints, witness.conflicts) == (1, 1)
    held = witness.get(0, 1)
    assert held is not None
    assert held.fingerprint == fingerprint(first)


def test_an_intact_store_has_no_finding() -> None:
    stored = chain_of(0, 3) + chain_of(1, 2)
    findings, comparison = compare(witness_of(*stored), stored)
    assert findings == []
    assert comparison.missing == []


def test_a_deleted_checkpoint_is_missing_once_a_second_read_confirms_it() -> None:
    stored = chain_of(0, 3)
    findings, comparison = compare(witness_of(*stored), stored[:2])
    assert findings == []
    assert comparison.missing == [(0, 3, 9)]
    assert missing_findings(comparison.missing, set()) == [
        Finding(0, 9, CHECKPOINT_MISSING, MISSING_DETAIL)
    ]
    # Committed, relayed and read after the store was read: there after all.
    assert missing_findings(comparison.missing, {(0, 3)}) == []


def test_a_rewritten_checkpoint_differs() -> None:
    stored = chain_of(0, 3)
    one, two, three = stored
    # The attacker's best: another validly signed checkpoint's hash, seq and signature.
    rewritten = dataclasses.replace(two, seq=one.seq, hash=one.hash, signature=one.signature)
    findings, comparison = compare(witness_of(*stored), [one, rewritten, three])
    assert findings == [Finding(0, two.seq, CHECKPOINT_MISMATCH, DIFFERS_DETAIL)]
    assert comparison.missing == []


def test_checkpoints_kept_off_the_stream_are_one_finding_per_run() -> None:
    stored = chain_of(0, 6)
    # Numbers 2-3 and 5-6 never reached the stream.
    witness = witness_of(stored[0], stored[3])
    findings, comparison = compare(witness, stored)
    assert findings == [
        Finding(0, stored[1].seq, CHECKPOINT_NOT_WITNESSED, not_witnessed_detail(2)),
        Finding(0, stored[4].seq, CHECKPOINT_NOT_WITNESSED, not_witnessed_detail(5)),
    ]
    assert comparison.missing == []
    # A run that grows keeps its finding (and so its one alert).
    grown, _ = compare(witness, [*stored, signed(0, 7, 21, "a" * 64)])
    assert grown == findings


def test_a_partition_the_stream_never_saw_is_not_witnessed() -> None:
    findings, _ = compare(witness_of(*chain_of(0, 2)), chain_of(0, 2) + chain_of(1, 2))
    assert findings == [Finding(1, 3, CHECKPOINT_NOT_WITNESSED, not_witnessed_detail(1))]


def test_checkpoints_within_the_grace_are_not_judged_yet() -> None:
    stored = chain_of(0, 3)
    # Signed at T0 + 1, 2 and 3 minutes; the reader was at the end a grace after T0 + 2m30s.
    findings, _ = compare(witness_of(stored[0]), stored, before=T0 + timedelta(minutes=2.5))
    assert findings == [Finding(0, 6, CHECKPOINT_NOT_WITNESSED, not_witnessed_detail(2))]
    findings, _ = compare(witness_of(stored[0]), stored, before=T0)
    assert findings == []


def test_the_live_findings_are_those_verify_names_with_the_stream() -> None:
    # Same findings, same alert ids: the hourly verification does not alert them again.
    stored = chain_of(0, 3) + chain_of(1, 1)
    one, two, three, other = stored
    rewritten = dataclasses.replace(two, hash="d" * 64)
    in_store = [one, rewritten, other]
    findings, comparison = compare(witness_of(*stored), in_store)
    findings += missing_findings(comparison.missing, set())
    judged = judge_witnessed(in_store, stored, CHECK)
    assert sorted(findings) == sorted(judged.findings)
    assert {f.kind for f in findings} == {CHECKPOINT_MISSING, CHECKPOINT_MISMATCH}
    assert three.seq in {f.seq for f in findings}
