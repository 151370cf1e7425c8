"""The audit service's record MAC and the pre-sign admission walk, fed forged rows of each kind."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

from moment_audit.domain.chain import GENESIS_HASH, ChainHead, digest, extend
from moment_audit.domain.findings import unauthenticated_record_alert
from moment_audit.service import admission
from moment_audit.service.admission import RecordWalk, Refusal, admit_rows
from moment_audit.service.record_check import NOT_CHECKED, RecordMacCheck
from moment_audit.service.verify import UNAUTHENTICATED_RECORD, Report
from moment_crypto.keysets import KEY_BYTES, VersionedKeys
from moment_crypto.record_mac import RecordMacs

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
MACS = RecordMacs(VersionedKeys("v1", {"v1": os.urandom(KEY_BYTES)}))
# What an attacker without the Vault key can do: MAC with a key of their own.
FORGER = RecordMacs(VersionedKeys("v1", {"v1": os.urandom(KEY_BYTES)}))

Row = dict[str, Any]


def event(n: int) -> Row:
    return {
        "source": "/moment/identity",
        "event_id": f"event-{n}",
        "action": "read",
        "actor_id": "staff-1",
        "actor_role": "support-operator",
        "subject_id": f"subject-{n}",
        "fields": ["email"],
        "purpose": "user-dealings",
        "outcome": "success",
        "occurred_at": T0 + timedelta(seconds=n),
        "request_id": None,
        "trace_id": None,
        "source_ref": None,
        "producer_seq": n,
    }


def chain(count: int, macs: RecordMacs | None = MACS, start: ChainHead | None = None) -> list[Row]:
    head = start or ChainHead(0)
    rows = []
    for n in range(count):
        link = extend(head, event(head.seq + n + 100))
        rows.append(
            {
                "id": link.seq,
                "chain_partition": link.partition,
                "seq": link.seq,
                "prev_hash": link.prev_hash,
                "record_hash": link.record_hash,
                "record_mac": None
                if macs is None
                else macs.mac(link.partition, link.seq, link.prev_hash, link.record_hash),
                "document": link.document.encode(),
            }
        )
        head = link.head
    return rows


def head_of(row: Row) -> ChainHead:
    return ChainHead(0, row["seq"], row["record_hash"])


PLACE = (2, 7, "ef" * 32)


def test_the_mac_names_its_key_version_and_covers_the_record_and_its_place() -> None:
    mac = MACS.mac(*PLACE, "ab" * 32)
    version, _, value = mac.partition(":")
    assert (version, len(value)) == ("v1", 64)
    assert len(mac) <= 80, "fits record_mac (String(80))"
    assert MACS.verify(*PLACE, "ab" * 32, mac)
    assert not MACS.verify(*PLACE, "cd" * 32, mac)
    # A genuine row copied whole under another seq, partition or link.
    assert not MACS.verify(2, 8, "ef" * 32, "ab" * 32, mac)
    assert not MACS.verify(3, 7, "ef" * 32, "ab" * 32, mac)
    assert not MACS.verify(2, 7, "00" * 32, "ab" * 32, mac)
    assert not MACS.verify(*PLACE, "ab" * 32, FORGER.mac(*PLACE, "ab" * 32))
    assert not MACS.verify(*PLACE, "ab" * 32, "v2:" + value), "a version the key set lacks"
    assert not MACS.verify(*PLACE, "ab" * 32, None)
    assert not MACS.verify(*PLACE, "ab" * 32, "")


def test_an_old_key_version_still_verifies_after_a_rotation() -> None:
    old = MACS.mac(*PLACE, "ab" * 32)
    rotated = RecordMacs(VersionedKeys("v2", {**MACS.keys.keys, "v2": os.urandom(KEY_BYTES)}))
    assert rotated.verify(*PLACE, "ab" * 32, old)
    assert rotated.mac(*PLACE, "ab" * 32).startswith("v2:")


def test_genuine_records_are_admitted_up_to_the_head() -> None:
    rows = chain(5)
    assert admit_rows(ChainHead(0), rows, MACS, 5) == admission.Admitted(head_of(rows[-1]))


def test_the_walk_starts_from_the_checkpoint() -> None:
    rows = chain(5)
    start = head_of(rows[1])
    assert admit_rows(start, rows[2:], MACS, 5).head == head_of(rows[-1])
    assert admit_rows(ChainHead(0, 2, GENESIS_HASH), rows[2:], MACS, 5).refusal == Refusal(
        0, 3, admission.BROKEN_LINK
    )


def _forged_after(rows: list[Row], macs: RecordMacs | None) -> Row:
    return chain(1, macs, head_of(rows[-1]))[0]


def test_a_correctly_chained_forged_record_is_refused_and_only_what_precedes_it_signed() -> None:
    rows = chain(3)
    for forged in (_forged_after(rows, None), _forged_after(rows, FORGER)):
        result = admit_rows(ChainHead(0), [*rows, forged], MACS, 4)
        reason = admission.MISSING_MAC if forged["record_mac"] is None else admission.BAD_MAC
        assert result == admission.Admitted(head_of(rows[-1]), Refusal(0, 4, reason))


def test_a_mac_copied_from_another_row_does_not_fit() -> None:
    rows = chain(3)
    forged = {**_forged_after(rows, None), "record_mac": rows[0]["record_mac"]}
    assert admit_rows(ChainHead(0), [*rows, forged], MACS, 4).refusal == Refusal(
        0, 4, admission.BAD_MAC
    )


def test_genuine_records_after_a_forged_one_are_not_signed_either() -> None:
    rows = chain(2)
    forged = _forged_after(rows, None)
    later = chain(2, MACS, head_of(forged))
    result = admit_rows(ChainHead(0), [*rows, forged, *later], MACS, 5)
    assert result.head == head_of(rows[-1])


def test_a_genuine_row_copied_whole_after_the_head_is_refused() -> None:
    # Its document still hashes to its record_hash and its MAC is genuine: only its place isn't.
    rows = chain(3)
    copy = {**rows[0], "id": 99, "seq": 4, "prev_hash": rows[-1]["record_hash"]}
    assert admit_rows(ChainHead(0), [*rows, copy], MACS, 4).refusal == Refusal(
        0, 4, admission.BAD_MAC
    )


def test_two_rows_for_one_seq_stop_the_walk_before_that_seq() -> None:
    rows = chain(3)
    twin = {**_forged_after(rows[:1], MACS), "record_mac": None}
    result = admit_rows(ChainHead(0), [rows[0], rows[1], twin, rows[2]], MACS, 3)
    assert result == admission.Admitted(head_of(rows[0]), Refusal(0, 2, admission.DUPLICATE))


def test_a_gap_a_wrong_hash_and_a_head_beyond_the_records_are_refused() -> None:
    rows = chain(4)
    assert admit_rows(ChainHead(0), [rows[0], rows[2]], MACS, 3).refusal == Refusal(
        0, 2, admission.GAP
    )
    edited = {**rows[1], "document": rows[1]["document"].replace(b"email", b"phone")}
    assert digest(edited["document"]) != edited["record_hash"]
    assert admit_rows(ChainHead(0), [rows[0], edited], MACS, 2).refusal == Refusal(
        0, 2, admission.BAD_HASH
    )
    assert admit_rows(ChainHead(0), rows, MACS, 6) == admission.Admitted(
        head_of(rows[-1]), Refusal(0, 5, admission.GAP)
    )


def test_the_walk_stops_looking_at_the_first_refusal() -> None:
    walk = RecordWalk(ChainHead(0), MACS)
    rows = chain(3)
    assert walk.feed(rows[0])
    assert not walk.feed({**rows[1], "record_mac": None})
    assert not walk.feed(rows[2])


def test_the_alert_is_raised_once_per_record() -> None:
    first = unauthenticated_record_alert(3, 17, "bad-mac", T0)
    again = unauthenticated_record_alert(3, 17, "bad-mac", T0 + timedelta(hours=1))
    other = unauthenticated_record_alert(3, 18, "bad-mac", T0)
    assert first.alert_id == again.alert_id != other.alert_id
    assert (first.rule, first.severity) == ("unauthenticated-record", "high")
    assert "partition 3 seq 17" in first.detail


def test_verify_names_each_unauthenticated_record_and_excuses_legacy_ones() -> None:
    rows = chain(4)
    rows[1] = {**rows[1], "record_mac": None}
    rows[2] = {
        **rows[2],
        "record_mac": FORGER.mac(0, 3, rows[2]["prev_hash"], rows[2]["record_hash"]),
    }
    check = RecordMacCheck(MACS, {})
    for row in rows:
        check.feed(row)
    report = Report()
    check.finish(report)
    assert [(f.seq, f.kind) for f in report.findings] == [
        (2, UNAUTHENTICATED_RECORD),
        (3, UNAUTHENTICATED_RECORD),
    ]
    legacy = RecordMacCheck(MACS, {0: 2})
    for row in rows:
        legacy.feed(row)
    assert [f.seq for f in legacy.findings] == [3]


def test_verify_without_the_key_warns_and_checks_nothing() -> None:
    check = RecordMacCheck(None, {})
    for row in chain(2, None):
        check.feed(row)
    report = Report()
    check.finish(report)
    assert (report.findings, report.warnings) == ([], [NOT_CHECKED])
