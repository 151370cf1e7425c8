"""The checkpoints' own chain, judged by the verifier: numbering, links, the signed partition
set, staleness and coverage. Real Ed25519 signatures over the v2 payload; no I/O."""

from __future__ import annotations

import base64
import dataclasses
from datetime import timedelta

import pytest
from pydantic import ValidationError

from moment_audit.config import CheckpointConfig
from moment_audit.domain.chain import GENESIS_HASH
from moment_audit.domain.checkpoints import Checkpoint
from moment_audit.service.verify import Report, verify_rows
from tests.audit.unit.test_chain import CHECK, KEY, T0, Row, chain, checkpoint_at, lines

MAX_AGE = timedelta(minutes=5)
NOW = T0 + timedelta(minutes=10)


def signed(cp: Checkpoint) -> Checkpoint:
    signature = base64.b64encode(KEY.sign(cp.payload())).decode()
    return dataclasses.replace(cp, signature=f"vault:v1:{signature}")


def checkpoints(
    rows: list[Row], seqs: list[int], partitions: tuple[int, ...] = (0,), minutes: int = 0
) -> list[Checkpoint]:
    """A partition's chained checkpoints over these seqs (repeats are heartbeats), one a minute
    from T0 + `minutes`, each naming its predecessor."""
    made: list[Checkpoint] = []
    for number, seq in enumerate(seqs, start=1):
        row = rows[seq - 1]
        made.append(
            signed(
                Checkpoint(
                    row["chain_partition"],
                    seq,
                    row["record_hash"],
                    T0 + timedelta(minutes=minutes + number),
                    "",
                    number,
                    made[-1].digest() if made else GENESIS_HASH,
                    partitions,
                )
            )
        )
    return made


def judged(rows: list[Row], cps: list[Checkpoint], now: object = NOW) -> Report:
    return verify_rows(rows, cps, CHECK, now=NOW if now is NOW else None, max_age=MAX_AGE)


def test_an_intact_chain_of_checkpoints_with_heartbeats_verifies() -> None:
    rows = chain(6)
    report = judged(rows, checkpoints(rows, [2, 4, 4, 6, 6], minutes=3))
    assert report.ok, lines(report)
    assert (report.records, report.checkpoints, report.uncovered) == (6, 5, [])
    assert report.summary() == "6 records, 5 checkpoints: verified"


def test_records_after_the_newest_checkpoint_are_not_yet_covered() -> None:
    rows = chain(9)
    report = judged(rows, checkpoints(rows, [2, 6], minutes=7))
    assert report.ok
    assert [u.line() for u in report.uncovered] == [
        "not yet covered: partition 0, 3 records after seq 6"
    ]
    assert report.summary() == "9 records, 2 checkpoints: verified; 3 records not yet covered"
    assert report.as_json()["not_covered"] == [{"partition": 0, "after_seq": 6, "records": 3}]


def test_a_deleted_middle_checkpoint_is_missing() -> None:
    rows = chain(8)
    cps = checkpoints(rows, [2, 4, 6, 8], minutes=5)
    assert lines(judged(rows, cps[:1] + cps[2:])) == [
        "partition 0 seq 6: CHECKPOINT MISSING (number 2)"
    ]
    assert lines(judged(rows, cps[3:])) == ["partition 0 seq 8: CHECKPOINT MISSING (numbers 1-3)"]


def test_a_checkpoint_that_does_not_name_its_predecessor_is_a_mismatch() -> None:
    rows = chain(6)
    cps = checkpoints(rows, [2, 4, 6], minutes=5)
    # What a fork looks like: the key signed a checkpoint 3 on top of another checkpoint 2.
    forked = signed(dataclasses.replace(cps[2], prev="ab" * 32))
    assert lines(judged(rows, [*cps[:2], forked])) == [
        "partition 0 seq 6: CHECKPOINT MISMATCH (checkpoint 3 does not name checkpoint 2's digest)"
    ]
    unrooted = signed(dataclasses.replace(cps[0], prev="ab" * 32))
    assert "checkpoint 1 does not start the chain" in lines(judged(rows, [unrooted, *cps[1:]]))[0]


def test_a_forged_checkpoint_is_a_bad_signature_and_nothing_else() -> None:
    rows = chain(6)
    cps = checkpoints(rows, [2, 4, 6], minutes=5)
    forged = dataclasses.replace(cps[1], created_at=cps[1].created_at + timedelta(seconds=1))
    assert lines(judged(rows, [cps[0], forged, cps[2]])) == ["partition 0 seq 4: BAD SIGNATURE"]


def test_the_newest_checkpoint_older_than_max_age_is_stale() -> None:
    rows = chain(6)
    cps = checkpoints(rows, [2, 4, 6])
    assert lines(judged(rows, cps)) == [
        "partition 0 seq 6: STALE CHECKPOINT (newest checkpoint (number 3) signed at "
        "2026-11-26T05:03:00.000000+00:00, over 300 s before verify)"
    ]
    # The newest deleted: what is left is older still.
    assert [f.kind for f in judged(rows, cps[:2]).findings] == ["STALE CHECKPOINT"]
    assert verify_rows(rows, cps, CHECK).ok, "no age limit without now and max_age"


def test_a_partition_named_by_a_signed_set_without_records_or_checkpoints_is_missing() -> None:
    rows = chain(4) + chain(4, partition=1)
    cps = checkpoints(rows[:4], [4], (0, 1, 2), minutes=6) + checkpoints(
        rows[4:], [4], (0, 1, 2), minutes=6
    )
    assert lines(judged(rows, cps)) == [
        "partition 2 seq 0: PARTITION MISSING "
        "(named by signed checkpoints; no record and no checkpoint left)"
    ]


def test_a_named_partition_with_records_and_no_checkpoint_lost_them() -> None:
    rows = chain(4) + chain(3, partition=1)
    cps = checkpoints(rows[:4], [4], (0, 1), minutes=6)
    assert lines(judged(rows, cps)) == [
        "partition 1 seq 1: CHECKPOINT MISSING "
        "(all of them, though signed checkpoints name the partition)"
    ]


def test_a_partition_never_checkpointed_is_stale_once_the_store_is() -> None:
    rows = chain(4) + chain(3, partition=1)
    fresh = checkpoints(rows[:4], [4], (0,), minutes=6)
    report = judged(rows, fresh)
    # Partition 1's records came after a recent checkpoint: the next pass signs them.
    assert report.ok
    assert report.warnings == ["partition 1: no checkpoints"]
    assert report.summary() == "7 records, 1 checkpoints: verified; 3 records not yet covered"
    old = checkpoints(rows[:4], [4], (0,))
    assert lines(judged(rows, old)) == [
        "partition 0 seq 4: STALE CHECKPOINT (newest checkpoint (number 1) signed at "
        "2026-11-26T05:01:00.000000+00:00, over 300 s before verify)",
        "partition 1 seq 1: STALE CHECKPOINT (never checkpointed)",
    ]


def test_records_and_no_checkpoint_at_all_do_not_verify() -> None:
    rows = chain(3) + chain(2, partition=1)
    assert lines(judged(rows, [])) == [
        "partition 0 seq 1: STALE CHECKPOINT (never checkpointed)",
        "partition 1 seq 1: STALE CHECKPOINT (never checkpointed)",
    ]
    unlimited = verify_rows(rows, [], CHECK)
    assert unlimited.ok, "with no age limit the warning stays"
    assert unlimited.summary() == "5 records, 0 checkpoints: verified; 5 records not yet covered"


def test_an_empty_store_says_nothing_without_a_witness() -> None:
    assert judged([], []).summary() == "0 records, 0 checkpoints: verified"


@pytest.mark.parametrize("deleted", [[1], [0, 1]])
def test_a_rewritten_chain_whose_covering_checkpoints_are_gone_is_named(deleted: list[int]) -> None:
    rows = chain(6) + chain(2, partition=1)
    cps = checkpoints(rows[:6], [2, 6], (0, 1)) + checkpoints(rows[6:], [2], (0, 1), minutes=6)
    # Records 3-6 rewritten consistently (test_chain shows it), their checkpoints deleted.
    kept = [cp for i, cp in enumerate(cps[:2]) if i not in deleted] + cps[2:]
    found = lines(judged(rows, kept))
    if deleted == [1]:
        # Checkpoint 1 is still there, but older than max age: the newest was deleted.
        assert [line.split(" (")[0] for line in found] == ["partition 0 seq 2: STALE CHECKPOINT"]
    else:
        assert found == [
            "partition 0 seq 1: CHECKPOINT MISSING "
            "(all of them, though signed checkpoints name the partition)"
        ]


def test_legacy_checkpoints_count_for_coverage_not_numbering() -> None:
    rows = chain(6)
    legacy = checkpoint_at(rows, 3)
    chained = checkpoints(rows, [6], minutes=7)
    report = verify_rows(rows, [legacy, *chained], CHECK)
    assert report.ok
    assert report.uncovered == []
    assert verify_rows(rows, [legacy], CHECK).uncovered[0].records == 3


def test_max_age_must_leave_room_for_the_cadence() -> None:
    assert CheckpointConfig().max_age_s >= 2 * CheckpointConfig().every_seconds
    with pytest.raises(ValidationError, match="at least twice"):
        CheckpointConfig(every_seconds=200)
    assert CheckpointConfig(every_seconds=200, max_age_s=400).max_age_s == 400
