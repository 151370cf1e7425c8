"""The witness: checkpoints kept outside the database, merged, compared and judged. Pure."""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord

from moment_audit.adapters.checkpoint_stream import StreamRead, judge_record
from moment_audit.adapters.witness_file import (
    WitnessFileError,
    from_line,
    read_witness,
    to_line,
    write_witness,
)
from moment_audit.domain.chain import GENESIS_HASH, ChainHead, extend
from moment_audit.domain.checkpoints import Checkpoint
from moment_audit.service.verify import (
    CHECKPOINT_MISMATCH,
    CHECKPOINT_MISSING,
    DELETED,
    TRUNCATED,
    Finding,
    Report,
    verify_rows,
)
from moment_audit.service.witness import (
    DIFFERS_DETAIL,
    MISSING_DETAIL,
    add_witness,
    judge_witnessed,
    merge,
)
from moment_contracts.audit_chain import CheckpointSigned, RetentionApplied
from moment_contracts.envelope import Envelope
from tests.audit.unit.test_chain import CHECK, KEY, T0, Row, chain, event, stored

# The first checkpoint made for each (partition, number): the one a later number chains to.
_CHAINED: dict[tuple[int, int], Checkpoint] = {}


def signed(partition: int, number: int, seq: int, hash_: str, *, minutes: int = 0) -> Checkpoint:
    """A checkpoint signed with the test key, chained to the first one made for number - 1."""
    before = _CHAINED.get((partition, number - 1))
    unsigned = Checkpoint(
        partition,
        seq,
        hash_,
        T0 + timedelta(minutes=minutes or number),
        "",
        number,
        GENESIS_HASH if before is None else before.digest(),
        (partition,),
    )
    signature = base64.b64encode(KEY.sign(unsigned.payload())).decode()
    made = dataclasses.replace(unsigned, signature=f"vault:v1:{signature}")
    _CHAINED.setdefault((partition, number), made)
    return made


def over(rows: list[Row], number: int, seq: int) -> Checkpoint:
    row = rows[seq - 1]
    return signed(row["chain_partition"], number, seq, row["record_hash"])


def forged(checkpoint: Checkpoint) -> Checkpoint:
    """Changed after signing: the signature no longer covers it."""
    return dataclasses.replace(checkpoint, seq=checkpoint.seq + 1)


ROWS = chain(6)
FIRST, SECOND, THIRD = over(ROWS, 1, 2), over(ROWS, 2, 4), over(ROWS, 3, 6)


def witnessed_report(
    rows: list[Row], stored: list[Checkpoint], witnessed: list[Checkpoint]
) -> Report:
    """What verify_store composes: the chains judged with the witness's trusted checkpoints."""
    judgement = judge_witnessed(stored, witnessed, CHECK)
    report = verify_rows(rows, stored + judgement.trusted, CHECK, {0: len(rows)})
    add_witness(report, judgement, len(stored))
    return report


def test_a_store_holding_everything_witnessed_verifies() -> None:
    report = witnessed_report(ROWS, [FIRST, SECOND, THIRD], [FIRST, SECOND, THIRD])
    assert (report.ok, report.checkpoints, report.warnings) == (True, 3, [])


def test_a_witnessed_checkpoint_the_database_lacks_is_missing() -> None:
    judgement = judge_witnessed([FIRST, SECOND], [FIRST, SECOND, THIRD], CHECK)
    assert judgement.findings == [Finding(0, 6, CHECKPOINT_MISSING, MISSING_DETAIL)]
    assert judgement.trusted == [THIRD]


def test_a_witnessed_checkpoint_the_database_holds_otherwise_is_a_mismatch() -> None:
    other = dataclasses.replace(signed(0, 3, 5, ROWS[4]["record_hash"]))
    judgement = judge_witnessed([FIRST, SECOND, other], [FIRST, SECOND, THIRD], CHECK)
    assert judgement.findings == [Finding(0, 6, CHECKPOINT_MISMATCH, DIFFERS_DETAIL)]
    assert judgement.trusted == [THIRD]


def test_the_same_checkpoint_in_another_time_zone_is_the_same() -> None:
    naive = dataclasses.replace(THIRD, created_at=THIRD.created_at.replace(tzinfo=None))
    assert judge_witnessed([naive], [THIRD], CHECK).findings == []


def test_stored_checkpoints_no_witness_holds_are_a_warning() -> None:
    other = over(chain(2, 1), 1, 2)
    judgement = judge_witnessed([FIRST, SECOND, THIRD, other], [FIRST], CHECK)
    assert (judgement.findings, judgement.trusted) == ([], [])
    assert judgement.warnings == [
        "partition 0: 2 stored checkpoints (numbers 2-3) are not witnessed",
        "partition 1: 1 stored checkpoints (numbers 1-1) are not witnessed",
    ]
    assert judge_witnessed([FIRST], [], CHECK).warnings == []


def test_a_badly_signed_witnessed_checkpoint_is_reported_and_never_trusted() -> None:
    judgement = judge_witnessed([FIRST], [FIRST, forged(SECOND)], CHECK)
    assert judgement.findings == []
    assert judgement.trusted == []
    assert judgement.warnings == [
        "witnessed checkpoint partition 0 number 2 (seq 5): signature does not verify, not trusted"
    ]


def test_a_checkpoint_witnessed_twice_is_judged_once() -> None:
    judgement = judge_witnessed([], [FIRST, FIRST, SECOND], CHECK)
    assert [f.seq for f in judgement.findings] == [2, 4]
    assert judgement.trusted == [FIRST, SECOND]


def test_deleting_everything_is_found_through_the_witness() -> None:
    report = witnessed_report([], [], [FIRST, SECOND, THIRD])
    assert [f.line() for f in report.findings] == [
        "partition 0 seq 1: TRUNCATED (chain ends at seq 0, signed up to seq 6)",
        f"partition 0 seq 2: CHECKPOINT MISSING ({MISSING_DETAIL})",
        f"partition 0 seq 4: CHECKPOINT MISSING ({MISSING_DETAIL})",
        f"partition 0 seq 6: CHECKPOINT MISSING ({MISSING_DETAIL})",
    ]
    assert report.checkpoints == 0
    # Without the witness there is nothing to hold the empty store to.
    assert verify_rows([], [], CHECK).ok


def test_a_cut_tail_and_its_checkpoint_deleted_is_truncated() -> None:
    report = witnessed_report(ROWS[:4], [FIRST, SECOND], [FIRST, SECOND, THIRD])
    assert {(f.seq, f.kind) for f in report.findings} == {(5, TRUNCATED), (6, CHECKPOINT_MISSING)}
    # The service's own head says the same here, but a DBA can rewrite it: not so the witness.
    assert verify_rows(ROWS[:4], [FIRST, SECOND], CHECK, {0: 4}).ok


def rehashed_from(seq: int) -> list[Row]:
    """Record `seq` edited and every record after it re-chained: a chain that links."""
    rows = ROWS[: seq - 1]
    head = ChainHead(0, seq - 1, rows[-1]["record_hash"])
    for n in range(seq, len(ROWS) + 1):
        changes = {"purpose": "marketing"} if n == seq else {}
        link = extend(head, {**event(n), **changes})
        rows.append(stored(link.document, link.record_hash))
        head = link.head
    return rows


def test_a_rehashed_chain_is_held_to_the_witnessed_hashes() -> None:
    rewritten = rehashed_from(3)
    # Its checkpoints over seq 3 and later deleted, the store verifies on its own.
    assert verify_rows(rewritten, [FIRST], CHECK, {0: 6}).ok
    report = witnessed_report(rewritten, [FIRST], [FIRST, SECOND, THIRD])
    assert [f.line() for f in report.findings] == [
        "partition 0 seq 4: CHECKPOINT MISMATCH",
        f"partition 0 seq 4: CHECKPOINT MISSING ({MISSING_DETAIL})",
        "partition 0 seq 6: CHECKPOINT MISMATCH",
        f"partition 0 seq 6: CHECKPOINT MISSING ({MISSING_DETAIL})",
    ]


def test_a_deleted_record_under_a_witnessed_checkpoint_is_deleted() -> None:
    report = witnessed_report(ROWS[:2] + ROWS[3:], [], [THIRD])
    assert (0, 3, DELETED, "") in {(f.partition, f.seq, f.kind, f.detail) for f in report.findings}


def test_merging_keeps_what_is_held_and_adds_what_is_new() -> None:
    merged = merge([SECOND, FIRST], [FIRST, THIRD, over(chain(2, 1), 1, 2)])
    assert [(c.partition, c.number) for c in merged.checkpoints] == [(0, 1), (0, 2), (0, 3), (1, 1)]
    assert [(c.partition, c.number) for c in merged.added] == [(0, 3), (1, 1)]
    assert merged.conflicts == []


def test_merging_names_every_checkpoint_that_disagrees_with_the_held_one() -> None:
    other = signed(0, 2, 3, ROWS[2]["record_hash"])
    merged = merge([FIRST, SECOND], [FIRST, other])
    assert merged.conflicts == [(SECOND, other)]


def test_unchained_checkpoints_have_no_place_in_a_witness() -> None:
    legacy = dataclasses.replace(FIRST, number=None)
    assert merge([], [legacy]).checkpoints == []


def test_a_witness_line_is_the_contract_and_round_trips(tmp_path: Path) -> None:
    naive = dataclasses.replace(THIRD, created_at=THIRD.created_at.replace(tzinfo=None))
    line = to_line(naive)
    assert set(json.loads(line)) == set(CheckpointSigned.model_fields)
    back = from_line(line)
    assert (back.payload(), back.signature) == (THIRD.payload(), THIRD.signature)
    path = tmp_path / "witness.jsonl"
    write_witness(path, [FIRST, THIRD])
    assert [c.number for c in read_witness(path)] == [1, 3]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{", "not a signed checkpoint (line)"),
        ('{"partition": 0}', "not a signed checkpoint"),
        (to_line(FIRST).replace('"number":1', '"number":1,"extra":1'), "extra"),
        (to_line(FIRST).replace(FIRST.hash, "zz" * 32), "hash"),
    ],
)
def test_a_line_that_is_not_a_signed_checkpoint_is_refused(
    tmp_path: Path, line: str, problem: str
) -> None:
    path = tmp_path / "witness.jsonl"
    path.write_text(to_line(FIRST) + "\n" + line + "\n")
    with pytest.raises(WitnessFileError, match=r"line 2: .*") as caught:
        read_witness(path)
    assert problem in str(caught.value)
    assert FIRST.signature not in str(caught.value)


def record(value: bytes | None, headers: list[tuple[str, bytes]], offset: int = 7) -> Any:
    return ConsumerRecord(
        "audit.checkpoints", 1, offset, 0, 0, None, value, None, -1, len(value or b""), headers
    )


def envelope_record(body: Any) -> Any:
    envelope = Envelope.of(body, source="/moment/audit", subject="partition-0")
    return record(envelope.data, list(envelope.headers()))


def contract(checkpoint: Checkpoint) -> CheckpointSigned:
    return CheckpointSigned.model_validate_json(to_line(checkpoint))


def test_the_stream_reader_takes_checkpoints_and_skips_horizons() -> None:
    read = StreamRead()
    judge_record(envelope_record(contract(SECOND)), 262_144, read)
    horizon = RetentionApplied(
        partition=0, seq=2, hash=FIRST.hash, cutoff=T0, pruned_at=T0, records=2, signature="x"
    )
    judge_record(envelope_record(horizon), 262_144, read)
    assert [(c.number, c.signature) for c in read.checkpoints] == [(2, SECOND.signature)]
    assert (read.horizons, read.records, read.warnings) == (1, 2, [])


def test_the_stream_reader_warns_of_everything_else() -> None:
    read = StreamRead()
    good = envelope_record(contract(SECOND))
    ce_type = [(k, v) for k, v in good.headers if k != "ce_type"]
    for junk in (
        record(None, good.headers),
        record(b"{}" * 200_000, good.headers),
        record(good.value, [("ce_type", b"\xff")]),
        record(good.value, [*ce_type, ("ce_type", b"moment.audit.something-else.v1")]),
        record(b'{"partition": 0}', good.headers),
    ):
        judge_record(junk, 262_144, read)
    assert read.checkpoints == []
    assert [w.split(": ", 1)[1] for w in read.warnings] == [
        "unreadable (no body), skipped",
        "400000 bytes, over the limit, skipped",
        "not a CloudEvent (EnvelopeError), skipped",
        "unexpected type, skipped",
        "not a signed checkpoint (created_at, hash, number, partitions, prev, seq, signature), "
        "skipped",
    ]
