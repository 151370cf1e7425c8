"""The chain and the verifier, fed stores corrupted in each way, each expecting its finding."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from moment_audit.domain.chain import (
    CONTENT_FIELDS,
    GENESIS_HASH,
    ChainHead,
    canonical,
    checkpoint_payload,
    content_of,
    document_of,
    extend,
    iso_utc,
    record_hash,
)
from moment_audit.domain.checkpoints import Checkpoint
from moment_audit.service.verify import Report, offline_signature_check, verify_rows

KEY = Ed25519PrivateKey.generate()
PUBLIC = KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
CHECK = offline_signature_check({1: PUBLIC})
T0 = datetime(2026, 11, 26, 5, 0, tzinfo=UTC)

Row = dict[str, Any]


def event(n: int) -> Row:
    return {
        "source": "/moment/identity",
        "event_id": f"event-{n}",
        "action": "read",
        "actor_id": "staff-1",
        "actor_role": "support-operator",
        "subject_id": f"subject-{n % 3}",
        "fields": ["email"],
        "purpose": "user-dealings",
        "outcome": "success",
        "occurred_at": T0 + timedelta(seconds=n),
        "request_id": None,
        "trace_id": None,
        "source_ref": None,
        "producer_seq": n,
    }


def stored(link_document: str, record_hash_: str) -> Row:
    """A row as `stream_chained` reads it: the chain columns come from the document."""
    document = json.loads(link_document)
    return {
        "chain_partition": document["partition"],
        "seq": document["seq"],
        "prev_hash": document["prev_hash"],
        "record_hash": record_hash_,
        "document": link_document.encode(),
    }


def chain(count: int, partition: int = 0) -> list[Row]:
    head = ChainHead(partition)
    rows = []
    for n in range(1, count + 1):
        link = extend(head, event(n))
        rows.append(stored(link.document, link.record_hash))
        head = link.head
    return rows


def edited(row: Row, **changes: Any) -> Row:
    """What a DBA's UPDATE of the document does: new bytes, the same record_hash."""
    document = {**json.loads(row["document"]), **changes}
    return stored(canonical(document), row["record_hash"])


def content(row: Row) -> dict[str, Any]:
    document = json.loads(row["document"])
    return {name: document[name] for name in CONTENT_FIELDS}


def sign(partition: int, seq: int, hash_: str) -> Checkpoint:
    signature = KEY.sign(checkpoint_payload(partition, seq, hash_, T0))
    return Checkpoint(partition, seq, hash_, T0, f"vault:v1:{base64.b64encode(signature).decode()}")


def checkpoint_at(rows: list[Row], seq: int) -> Checkpoint:
    return sign(rows[seq - 1]["chain_partition"], seq, rows[seq - 1]["record_hash"])


def lines(report: Report) -> list[str]:
    return [f.line() for f in report.findings]


def test_a_chain_links_from_genesis_and_hashes_its_content() -> None:
    rows = chain(3)
    assert [r["seq"] for r in rows] == [1, 2, 3]
    assert rows[0]["prev_hash"] == GENESIS_HASH
    assert rows[1]["prev_hash"] == rows[0]["record_hash"]
    again = record_hash(content_of(event(3)), partition=0, seq=3, prev_hash=rows[2]["prev_hash"])
    assert again == rows[2]["record_hash"]
    other_partition = record_hash(content_of(event(3)), partition=1, seq=3, prev_hash=again)
    assert other_partition != again


def test_a_document_is_the_canonical_json_of_what_its_hash_covers() -> None:
    link = extend(ChainHead(4, 6, "cd" * 32), {**event(7), "actor_id": "staff-\u00e9\u2028"})
    assert json.loads(link.document) == {
        **content_of(event(7)),
        "actor_id": "staff-\u00e9\u2028",
        "seq": 7,
        "prev_hash": "cd" * 32,
        "partition": 4,
    }
    assert link.document == canonical(json.loads(link.document))
    assert "\u2028" in link.document, "non-ASCII is stored as itself, not escaped"
    assert json.loads(link.document)["producer_seq"] == 7


def test_a_record_without_a_producer_seq_hashes_it_as_null() -> None:
    link = extend(ChainHead(0), {**event(1), "producer_seq": None})
    assert json.loads(link.document)["producer_seq"] is None
    assert link.record_hash != extend(ChainHead(0), event(1)).record_hash


def test_a_naive_datetime_reads_as_utc() -> None:
    aware = datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert iso_utc(aware.replace(tzinfo=None)) == iso_utc(aware.astimezone()) == iso_utc(aware)


def test_an_intact_store_verifies() -> None:
    rows = chain(10) + chain(4, partition=2)
    report = verify_rows(rows, [checkpoint_at(rows, 5), checkpoint_at(rows, 10)], CHECK)
    assert report.ok
    assert report.records == 14
    assert report.warnings == ["partition 2: no checkpoints"]


@pytest.mark.parametrize("column", ["actor_id", "purpose", "fields", "occurred_at", "source"])
def test_a_modified_field_is_named(column: str) -> None:
    rows = chain(6)
    changed: dict[str, Any] = {
        "actor_id": "staff-2",
        "purpose": "marketing",
        "fields": ["email", "phone"],
        "occurred_at": T0 - timedelta(days=1),
        "source": "/moment/consent",
    }
    if column == "occurred_at":
        changed[column] = iso_utc(changed[column])
    rows[3] = edited(rows[3], **{column: changed[column]})
    assert lines(verify_rows(rows, [checkpoint_at(rows, 6)], CHECK)) == [
        "partition 0 seq 4: MODIFIED"
    ]


@pytest.mark.parametrize(
    "document",
    [
        b"not json",
        b"[1, 2]",
        b'{"seq": 4, "partition": 0, "prev_hash": "x", "actor_id": "\\ud800"}',
    ],
)
def test_a_document_replaced_by_anything_is_modified(document: bytes) -> None:
    rows = chain(6)
    rows[3] = {**rows[3], "document": document}
    assert lines(verify_rows(rows, [], CHECK)) == ["partition 0 seq 4: MODIFIED"]


def test_the_same_json_spelled_otherwise_is_modified() -> None:
    # The stored bytes are what was hashed: a re-serialised but equal document fails too.
    rows = chain(6)
    spaced = json.dumps(json.loads(rows[3]["document"]), indent=1).encode()
    rows[3] = {**rows[3], "document": spaced}
    assert lines(verify_rows(rows, [], CHECK)) == ["partition 0 seq 4: MODIFIED"]


def test_a_deleted_record_is_named() -> None:
    rows = chain(6)
    checkpoint = checkpoint_at(rows, 6)
    del rows[2]
    assert lines(verify_rows(rows, [checkpoint], CHECK)) == ["partition 0 seq 3: DELETED"]


def test_an_inserted_record_is_named() -> None:
    rows = chain(5)
    forged = document_of(content_of(event(99)), partition=0, seq=6, prev_hash="ab" * 32)
    forged_record = stored(
        forged, record_hash(content_of(event(99)), partition=0, seq=6, prev_hash="ab" * 32)
    )
    report = verify_rows([*rows, forged_record], [checkpoint_at(rows, 5)], CHECK)
    assert lines(report) == ["partition 0 seq 6: INSERTED (does not chain to the previous record)"]


def test_a_second_record_for_one_seq_is_named() -> None:
    rows = chain(5)
    rows.insert(3, edited(rows[2], event_id="forged"))
    assert lines(verify_rows(rows, [], CHECK)) == [
        "partition 0 seq 3: INSERTED (a second record for this seq)"
    ]


def test_two_swapped_records_are_named() -> None:
    rows = chain(6)
    checkpoint = checkpoint_at(rows, 6)
    rows[2], rows[3] = edited(rows[3], seq=3), edited(rows[2], seq=4)
    assert lines(verify_rows(rows, [checkpoint], CHECK)) == [
        "partition 0 seq 3: REORDERED (was seq 4)",
        "partition 0 seq 4: REORDERED (was seq 3)",
    ]


def test_truncation_after_a_checkpoint_is_named() -> None:
    rows = chain(8)
    checkpoints = [checkpoint_at(rows, 4), checkpoint_at(rows, 8)]
    report = verify_rows(rows[:5], checkpoints, CHECK)
    assert lines(report) == [
        "partition 0 seq 6: TRUNCATED (chain ends at seq 5, signed up to seq 8)"
    ]


def test_a_flipped_signature_byte_is_named() -> None:
    rows = chain(4)
    good = checkpoint_at(rows, 4)
    raw = bytearray(base64.b64decode(good.signature.split(":")[2]))
    raw[0] ^= 0x01
    bad = Checkpoint(0, 4, good.hash, T0, f"vault:v1:{base64.b64encode(bytes(raw)).decode()}")
    assert lines(verify_rows(rows, [bad], CHECK)) == ["partition 0 seq 4: BAD SIGNATURE"]


@pytest.mark.parametrize("signature", ["vault:v2:AAAA", "garbage", "vault:v1:!!!", "vault:vx:AA"])
def test_a_malformed_or_unknown_signature_is_bad(signature: str) -> None:
    rows = chain(2)
    cp = Checkpoint(0, 2, rows[1]["record_hash"], T0, signature)
    assert lines(verify_rows(rows, [cp], CHECK)) == ["partition 0 seq 2: BAD SIGNATURE"]


def test_a_rewritten_chain_breaks_its_checkpoint() -> None:
    rows = chain(5)
    checkpoint = checkpoint_at(rows, 5)
    # An attacker who knows the algorithm rewrites seq 3 onwards consistently.
    head = ChainHead(0, 2, rows[1]["record_hash"])
    for index in range(2, len(rows)):
        link = extend(head, {**content(rows[index]), "actor_id": "someone-else"})
        rows[index] = stored(link.document, link.record_hash)
        head = link.head
    assert lines(verify_rows(rows, [checkpoint], CHECK)) == [
        "partition 0 seq 5: CHECKPOINT MISMATCH"
    ]


def test_a_checkpoint_moved_to_another_seq_fails_its_signature() -> None:
    rows = chain(5)
    cp = checkpoint_at(rows, 5)
    moved = Checkpoint(0, 4, rows[3]["record_hash"], cp.created_at, cp.signature)
    assert lines(verify_rows(rows, [moved], CHECK)) == ["partition 0 seq 4: BAD SIGNATURE"]


def test_a_tail_cut_beyond_the_last_checkpoint_shows_against_the_recorded_head() -> None:
    rows = chain(8)
    report = verify_rows(rows[:6], [checkpoint_at(rows, 4)], CHECK, head_seqs={0: 8})
    assert lines(report) == [
        "partition 0 seq 7: TRUNCATED (chain ends at seq 6, its head is at seq 8)"
    ]
    assert verify_rows(rows, [checkpoint_at(rows, 4)], CHECK, head_seqs={0: 8}).ok
