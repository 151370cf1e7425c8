"""Verify's own row check: each query column against its hashed document, and (source, event id)
counted across the store, trusting no constraint of the database."""

from __future__ import annotations

import importlib
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from moment_audit.adapters.agreement import DOCUMENT_COLUMNS, FUNCTION_SQL
from moment_audit.adapters.repositories import row_of
from moment_audit.domain.agreement_check import RowChecks, disagreeing, event_key
from moment_audit.domain.chain import ChainHead, extend

T0 = datetime(2026, 12, 6, 12, 0, 0, 123456, tzinfo=UTC)


def event(n: int, **changes: Any) -> dict[str, Any]:
    return {
        "source": "/moment/identity",
        "event_id": f"event-{n}",
        "action": "read",
        "actor_id": "staff-1",
        "actor_role": "support-operator",
        "subject_id": f"subject-{n}",
        "fields": ["email", "phone"],
        "purpose": None,
        "outcome": "success",
        "occurred_at": T0 + timedelta(seconds=n),
        "request_id": None,
        "trace_id": None,
        "source_ref": None,
        "producer_seq": n,
        **changes,
    }


def rows(count: int, partition: int = 0, **changes: Any) -> list[dict[str, Any]]:
    """Rows as stream_chained reads them: every query column, the document as UTF-8 bytes."""
    head = ChainHead(partition)
    found = []
    for n in range(1, count + 1):
        link = extend(head, event(n, **changes))
        row = row_of(link, partition, n, T0)
        found.append({**row, "document": link.document.encode()})
        head = link.head
    return found


def checked(*stored: dict[str, Any]) -> RowChecks:
    checks = RowChecks(DOCUMENT_COLUMNS)
    for row in stored:
        checks.feed(row)
    return checks


def test_rows_as_ingest_stores_them_agree() -> None:
    checks = checked(*rows(5), *rows(5, partition=1, source="/other"))
    assert (checks.mismatches, checks.duplicates) == ([], [])


def test_an_instant_agrees_in_any_zone_and_naive_as_sqlite_returns_it() -> None:
    [row] = rows(1)
    document = json.loads(row["document"])
    eastern = row["occurred_at"].astimezone(timezone(timedelta(hours=-5)))
    naive = row["occurred_at"].replace(tzinfo=None)
    assert disagreeing(document, {**row, "occurred_at": eastern}, DOCUMENT_COLUMNS) == []
    assert disagreeing(document, {**row, "occurred_at": naive}, DOCUMENT_COLUMNS) == []
    moved = {**row, "occurred_at": row["occurred_at"] + timedelta(microseconds=1)}
    assert disagreeing(document, moved, DOCUMENT_COLUMNS) == ["occurred_at"]


def test_each_column_edited_alone_is_named() -> None:
    [row] = rows(1)
    document = json.loads(row["document"])
    edits = {
        "source": "/forged",
        "purpose": "marketing",
        "fields": ["email"],
        "producer_seq": 2,
        "chain_partition": 1,
        "seq": 2,
        "prev_hash": "f" * 64,
        "request_id": "",
    }
    for column, value in edits.items():
        assert disagreeing(document, {**row, column: value}, DOCUMENT_COLUMNS) == [column]


def test_json_types_do_not_pass_for_each_other() -> None:
    [row] = rows(1)
    document = json.loads(row["document"])
    assert disagreeing(document, {**row, "producer_seq": True}, DOCUMENT_COLUMNS) == [
        "producer_seq"
    ]
    assert disagreeing({**document, "producer_seq": 1.0}, row, DOCUMENT_COLUMNS) == ["producer_seq"]
    assert disagreeing(document, {**row, "fields": ("email", "phone")}, DOCUMENT_COLUMNS) == [
        "fields"
    ]


def test_json_fields_that_are_not_strings_are_compared_strictly() -> None:
    [row] = rows(1)
    document = {**json.loads(row["document"]), "fields": [1, 2.5]}
    stored = {**row, "document": json.dumps(document).encode()}
    assert checked({**stored, "fields": [1, 2.5]}).mismatches == []
    [problem] = checked({**stored, "fields": [True, 2.5]}).mismatches
    assert problem.detail == "disagrees with its document: fields"


def test_a_missing_key_an_extra_key_and_no_object_are_named() -> None:
    [row] = rows(1)
    document = json.loads(row["document"])
    del document["purpose"]
    assert disagreeing(document, row, DOCUMENT_COLUMNS) == ["purpose"]
    document = {**json.loads(row["document"]), "hidden": 1}
    assert disagreeing(document, row, DOCUMENT_COLUMNS) == ["document has other keys: hidden"]
    assert disagreeing([1], row, DOCUMENT_COLUMNS) == ["document is not a JSON object"]
    bad = checked({**row, "document": b"\xff{"})
    assert [p.detail for p in bad.mismatches] == [
        "disagrees with its document: document is not a JSON object"
    ]


def test_a_row_edited_behind_the_check_is_a_mismatch_at_its_place() -> None:
    stored = rows(3)
    stored[1] = {**stored[1], "purpose": "marketing", "actor_id": "staff-2"}
    [problem] = checked(*stored).mismatches
    assert (problem.partition, problem.seq) == (0, 2)
    assert problem.detail == "disagrees with its document: actor_id, purpose"


def test_a_replayed_event_names_where_the_first_copy_is() -> None:
    first, second = rows(2), rows(3, partition=1, source="/other")
    # Partition 0's second event again, at partition 1 seq 4.
    replay = {**first[1], "chain_partition": 1, "seq": 4}
    checks = checked(*first, *second, replay)
    assert [(p.partition, p.seq, p.detail) for p in checks.duplicates] == [
        (1, 4, "event already stored at partition 0 seq 2"),
    ]


@given(st.text(), st.text(), st.text(), st.text())
def test_event_keys_differ_when_source_or_id_do(a: str, b: str, c: str, d: str) -> None:
    assert (event_key(a, b) == event_key(c, d)) == ((a, b) == (c, d))


@given(
    purpose=st.none() | st.text(max_size=20),
    fields=st.lists(st.text(max_size=10), max_size=4),
    producer_seq=st.none() | st.integers(min_value=0, max_value=2**53 - 1),
    at=st.datetimes(
        min_value=datetime(1970, 1, 2),  # noqa: DTZ001 (hypothesis wants naive bounds)
        max_value=datetime(9999, 1, 1),  # noqa: DTZ001
        timezones=st.just(UTC),
    ),
)
def test_any_stored_row_agrees_with_its_document(
    purpose: str | None, fields: list[str], producer_seq: int | None, at: datetime
) -> None:
    [row] = rows(1, purpose=purpose, fields=fields, producer_seq=producer_seq, occurred_at=at)
    assert disagreeing(json.loads(row["document"]), row, DOCUMENT_COLUMNS) == []


def test_migration_0009_creates_the_function_the_check_compares_with() -> None:
    guards = importlib.import_module(
        "moment_audit.migrations.versions.0009_guards_pinned_and_named"
    )
    assert guards.PG_AGREES.strip() == FUNCTION_SQL.strip()


def test_a_second_row_at_the_same_seq_with_the_same_event_is_a_duplicate() -> None:
    [row] = rows(1)
    [problem] = checked(row, dict(row)).duplicates
    assert (problem.partition, problem.seq, problem.detail) == (
        0,
        1,
        "event already stored at partition 0 seq 1",
    )
