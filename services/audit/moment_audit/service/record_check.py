"""Verify's check of every record's MAC (moment_crypto.record_mac): did the service store it?

A row slipped into the store by whoever holds the database, however well chained, has no MAC the
service's Vault key made, or one copied from another row that doesn't fit its hash: each is an
UNAUTHENTICATED RECORD. Records stored before record MACs existed (migration 0008) have none;
those a validly signed legacy (unchained) checkpoint covers are accepted, any other is named.
Without the key (verify run by someone audit's AppRole isn't) nothing is checked, and the report
says so. Pure: fed rows, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from moment_audit.domain.checkpoints import Checkpoint
from moment_audit.service.verify import UNAUTHENTICATED_RECORD, Finding, Report, SignatureCheck
from moment_crypto.record_mac import RecordMacs

NOT_CHECKED = "record MACs not checked (the record MAC key could not be read)"


class RecordMacCheck:
    def __init__(self, macs: RecordMacs | None, legacy_cover: Mapping[int, int]) -> None:
        """`legacy_cover`: per partition, the highest seq a validly signed legacy checkpoint
        covers."""
        self._macs = macs
        self._legacy = legacy_cover
        self.findings: list[Finding] = []

    @classmethod
    def of(
        cls, macs: RecordMacs | None, checkpoints: Iterable[Checkpoint], check: SignatureCheck
    ) -> RecordMacCheck:
        cover: dict[int, int] = {}
        for cp in checkpoints:
            if cp.number is None and check(cp.payload(), cp.signature):
                cover[cp.partition] = max(cover.get(cp.partition, 0), cp.seq)
        return cls(macs, cover)

    def feed(self, row: Mapping[str, Any]) -> None:
        if self._macs is None:
            return
        mac = row.get("record_mac")
        partition, seq = int(row["chain_partition"]), int(row["seq"])
        if mac is None:
            if seq > self._legacy.get(partition, 0):
                self.findings.append(Finding(partition, seq, UNAUTHENTICATED_RECORD, "no MAC"))
        elif not self._macs.verify(
            partition, seq, str(row["prev_hash"]), str(row["record_hash"]), str(mac)
        ):
            self.findings.append(Finding(partition, seq, UNAUTHENTICATED_RECORD, "bad MAC"))

    def finish(self, report: Report) -> None:
        if self._macs is None:
            report.warnings.append(NOT_CHECKED)
            return
        report.findings.extend(self.findings)
