"""Retention horizons: choosing where to cut, judging a horizon, and verifying a pruned chain."""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import timedelta, timezone

import pytest

from moment_audit.domain.chain import checkpoint_payload, iso_utc
from moment_audit.domain.checkpoints import Checkpoint
from moment_audit.domain.retention import (
    Horizon,
    choose_checkpoint,
    horizon_payload,
    horizon_problem,
    parse_duration,
)
from moment_audit.service.verify import Report, verify_rows
from tests.audit.unit.test_chain import CHECK, KEY, T0, Row, chain, checkpoint_at

CUTOFF = T0 + timedelta(days=1)
PRUNED_AT = T0 + timedelta(days=2)


def horizon_at(rows: list[Row], seq: int, records: int | None = None) -> Horizon:
    row = rows[seq - 1]
    unsigned = Horizon(
        row["chain_partition"],
        seq,
        row["record_hash"],
        CUTOFF,
        PRUNED_AT,
        seq if records is None else records,
    )
    signature = base64.b64encode(KEY.sign(horizon_payload(unsigned))).decode()
    return replace(unsigned, signature=f"vault:v1:{signature}")


def _resigned(checkpoint: Checkpoint) -> Checkpoint:
    payload = checkpoint_payload(
        checkpoint.partition, checkpoint.seq, checkpoint.hash, checkpoint.created_at
    )
    signature = base64.b64encode(KEY.sign(payload)).decode()
    return replace(checkpoint, signature=f"vault:v1:{signature}")


def lines(report: Report) -> list[str]:
    return [f.line() for f in report.findings]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("400d", timedelta(days=400)),
        ("12h", timedelta(hours=12)),
        ("90m", timedelta(minutes=90)),
        ("30s", timedelta(seconds=30)),
        ("2w", timedelta(weeks=2)),
        ("1d12h", timedelta(days=1, hours=12)),
        (" 0S ", timedelta(0)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "400", "d", "5y", "1d 2h", "-3d", "P400D"])
def test_malformed_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="a duration is digits and a unit"):
        parse_duration(text)


def _signed_at(seq: int, minutes: int) -> Checkpoint:
    return Checkpoint(0, seq, "ab" * 32, T0 + timedelta(minutes=minutes), "")


CHECKPOINTS = [_signed_at(3, 0), _signed_at(6, 60), _signed_at(9, 120)]


@pytest.mark.parametrize(
    ("cutoff_minutes", "after_seq", "first_young", "expected"),
    [
        (90, 0, None, 6),  # the newest signed before the cut-off
        (60, 0, None, 3),  # signed exactly at the cut-off is not before it
        (180, 0, None, 9),
        (180, 0, 9, 6),  # seq 9 itself is young: the checkpoint must lie below it
        (180, 0, 4, 3),
        (180, 0, 1, None),  # even the first record is young
        (90, 6, None, None),  # the horizon only moves forward
        (-1, 0, None, None),  # nothing signed before the cut-off
    ],
)
def test_the_checkpoint_a_horizon_rests_on(
    cutoff_minutes: int, after_seq: int, first_young: int | None, expected: int | None
) -> None:
    cutoff = T0 + timedelta(minutes=cutoff_minutes)
    chosen = choose_checkpoint(CHECKPOINTS, cutoff, after_seq, first_young)
    assert (chosen.seq if chosen else None) == expected


def test_a_horizon_on_its_signed_checkpoint_is_trusted() -> None:
    rows = chain(6)
    assert horizon_problem(horizon_at(rows, 6), checkpoint_at(rows, 6), CHECK) is None


def test_each_reason_a_horizon_is_not_trusted() -> None:
    rows = chain(6)
    good, checkpoint = horizon_at(rows, 6), checkpoint_at(rows, 6)
    forged_checkpoint = replace(checkpoint, signature=checkpoint.signature[:-4] + "AAA=")
    late = _resigned(replace(checkpoint, created_at=CUTOFF))
    reasons = {
        "no checkpoint at this seq": (good, None),
        "its hash is not its checkpoint's": (replace(good, hash="cd" * 32), checkpoint),
        "its checkpoint's signature fails": (good, forged_checkpoint),
        "its signature fails": (replace(good, records=1), checkpoint),
        "its checkpoint was signed after its cut-off": (good, late),
    }
    for reason, (horizon, resting_on) in reasons.items():
        assert horizon_problem(horizon, resting_on, CHECK) == reason


def test_a_horizon_applied_before_its_cut_off_is_not_trusted() -> None:
    rows = chain(6)
    early = replace(horizon_at(rows, 6), pruned_at=CUTOFF - timedelta(seconds=1))
    resigned = base64.b64encode(KEY.sign(horizon_payload(early))).decode()
    early = replace(early, signature=f"vault:v1:{resigned}")
    problem = horizon_problem(early, checkpoint_at(rows, 6), CHECK)
    assert problem == "its cut-off is later than its pruning"


def test_a_horizon_payload_is_no_checkpoint_payload() -> None:
    # A checkpoint signature must never pass for a horizon's, nor the reverse.
    rows = chain(6)
    checkpoint = checkpoint_at(rows, 6)
    as_horizon = replace(horizon_at(rows, 6), signature=checkpoint.signature)
    assert horizon_problem(as_horizon, checkpoint, CHECK) == "its signature fails"


def test_a_pruned_chain_verifies_from_its_horizon() -> None:
    rows = chain(10)
    horizon = horizon_at(rows, 6)
    checkpoints = [checkpoint_at(rows, 6), checkpoint_at(rows, 10)]
    report = verify_rows(rows[6:], checkpoints, CHECK, {0: 10}, [horizon])
    assert (report.ok, report.records, report.horizons, report.warnings) == (
        True,
        4,
        [horizon],
        [],
    )
    assert report.as_json()["horizons"] == [
        {
            "partition": 0,
            "seq": 6,
            "cutoff": iso_utc(CUTOFF),
            "pruned_at": iso_utc(PRUNED_AT),
            "records": 6,
        }
    ]


def test_a_chain_pruned_to_its_end_verifies() -> None:
    rows = chain(6)
    report = verify_rows([], [checkpoint_at(rows, 6)], CHECK, {0: 6}, [horizon_at(rows, 6)])
    assert (report.ok, report.records) == (True, 0)


def test_records_awaiting_deletion_below_the_horizon_are_a_warning() -> None:
    rows = chain(10)
    report = verify_rows(rows[2:], [checkpoint_at(rows, 6)], CHECK, {0: 10}, [horizon_at(rows, 6)])
    assert report.ok
    assert report.records == 4
    assert report.warnings == [
        "partition 0: 4 records at or below the retention horizon (seq 6) await deletion; "
        "prune removes them"
    ]


def test_a_record_deleted_above_the_horizon_is_deleted() -> None:
    rows = chain(10)
    kept = [r for r in rows[6:] if r["seq"] != 8]
    report = verify_rows(kept, [checkpoint_at(rows, 6)], CHECK, {0: 10}, [horizon_at(rows, 6)])
    assert lines(report) == ["partition 0 seq 8: DELETED"]


def test_a_forged_horizon_excuses_nothing() -> None:
    rows = chain(10)
    forged = replace(horizon_at(rows, 6), signature="vault:v1:" + "A" * 88)
    report = verify_rows(rows[6:], [checkpoint_at(rows, 6)], CHECK, {0: 10}, [forged])
    assert lines(report) == [
        *(f"partition 0 seq {seq}: DELETED" for seq in range(1, 6)),
        "partition 0 seq 6: BAD HORIZON (its signature fails)",
        "partition 0 seq 6: DELETED",
    ]
    assert report.horizons == []


def test_a_horizon_without_its_checkpoint_excuses_nothing() -> None:
    rows = chain(10)
    report = verify_rows(rows[6:], [checkpoint_at(rows, 10)], CHECK, {0: 10}, [horizon_at(rows, 6)])
    assert "partition 0 seq 6: BAD HORIZON (no checkpoint at this seq)" in lines(report)
    assert sum(f.kind == "DELETED" for f in report.findings) == 6


def test_a_forged_horizon_above_a_good_one_excuses_only_up_to_the_good_one() -> None:
    rows = chain(10)
    good = horizon_at(rows, 3)
    forged = replace(horizon_at(rows, 6, records=3), signature="vault:v1:" + "A" * 88)
    checkpoints = [checkpoint_at(rows, 3), checkpoint_at(rows, 6)]
    report = verify_rows(rows[6:], checkpoints, CHECK, {0: 10}, [good, forged])
    assert lines(report) == [
        "partition 0 seq 4: DELETED",
        "partition 0 seq 5: DELETED",
        "partition 0 seq 6: BAD HORIZON (its signature fails)",
        "partition 0 seq 6: DELETED",
    ]
    assert report.horizons == [good]


def test_the_newest_trusted_horizon_is_where_the_walk_starts() -> None:
    rows = chain(10)
    horizons = [horizon_at(rows, 3), horizon_at(rows, 6, records=3)]
    checkpoints = [checkpoint_at(rows, 3), checkpoint_at(rows, 6)]
    report = verify_rows(rows[6:], checkpoints, CHECK, {0: 10}, horizons)
    assert (report.ok, report.horizons) == (True, [horizons[1]])


def test_a_replay_of_the_horizons_record_is_inserted() -> None:
    rows = chain(10)
    replayed = {**rows[5], "event_id": "replayed", "seq": 11}
    report = verify_rows(
        [*rows[6:], replayed], [checkpoint_at(rows, 6)], CHECK, {0: 11}, [horizon_at(rows, 6)]
    )
    assert lines(report) == ["partition 0 seq 11: INSERTED (a copy of seq 6)"]


def test_a_cut_tail_after_pruning_is_still_truncated() -> None:
    rows = chain(10)
    checkpoints = [checkpoint_at(rows, 6), checkpoint_at(rows, 10)]
    report = verify_rows(rows[6:8], checkpoints, CHECK, {0: 10}, [horizon_at(rows, 6)])
    assert lines(report) == [
        "partition 0 seq 9: TRUNCATED (chain ends at seq 8, signed up to seq 10)"
    ]


def test_a_checkpoint_older_than_the_horizon_is_still_checked() -> None:
    rows = chain(10)
    old = checkpoint_at(rows, 3)
    old = replace(old, signature=old.signature[:-4] + "AAA=")
    checkpoints = [old, checkpoint_at(rows, 6)]
    report = verify_rows(rows[6:], checkpoints, CHECK, {0: 10}, [horizon_at(rows, 6)])
    assert lines(report) == ["partition 0 seq 3: BAD SIGNATURE"]


def test_times_compare_as_instants_whatever_their_zone() -> None:
    # SQLite hands back naive UTC; PostgreSQL its session's zone.
    rows = chain(6)
    naive = replace(horizon_at(rows, 6), cutoff=CUTOFF.replace(tzinfo=None))
    resigned = base64.b64encode(KEY.sign(horizon_payload(naive))).decode()
    naive = replace(naive, signature=f"vault:v1:{resigned}")
    assert horizon_problem(naive, checkpoint_at(rows, 6), CHECK) is None
    assert horizon_payload(naive) == horizon_payload(replace(naive, cutoff=CUTOFF))
    in_paris = CUTOFF.astimezone(timezone(timedelta(hours=1)))
    assert horizon_payload(naive) == horizon_payload(replace(naive, cutoff=in_paris))
