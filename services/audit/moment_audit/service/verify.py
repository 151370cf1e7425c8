"""Verify the audit store: recompute every chain, check every checkpoint, name each finding.

`ChainVerifier` is fed stored rows in (partition, seq, id) order and never touches I/O, so tests
can hand it corrupted rows. A row whose hash no longer matches its content is MODIFIED, or
REORDERED when it matches at the position its own prev_hash chains it to. A missing seq is
DELETED, a second row for one seq or a valid row that does not chain to its predecessor is
INSERTED, a chain shorter than its last good checkpoint is TRUNCATED, and a checkpoint whose
signature fails is BAD SIGNATURE. A chain shorter than the service's own recorded head (not
signed, so only a hint) is TRUNCATED too. A pruned partition's walk starts at its highest
retention horizon that rests on a matching, validly signed checkpoint and is validly signed
itself; any other horizon is a BAD HORIZON and excuses nothing, so the records it claims to have
pruned are DELETED.

Chained checkpoints are judged by `service/checkpoint_chain.py` (its docstring has the rules);
records past a partition's newest validly signed checkpoint are reported as not yet covered.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from hashlib import sha256
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from moment_audit.domain.chain import GENESIS_HASH, hash_at_seq, iso_utc
from moment_audit.domain.checkpoints import Checkpoint
from moment_audit.domain.retention import Horizon, horizon_problem
from moment_audit.service.checkpoint_chain import CheckpointChain
from moment_audit.service.verdict import (
    BAD_HORIZON,
    BAD_SIGNATURE,
    CHECKPOINT_MISMATCH,
    CHECKPOINT_MISSING,
    CHECKPOINT_NOT_WITNESSED,
    COLUMN_MISMATCH,
    DELETED,
    DUPLICATE_EVENT,
    GUARD_MISSING,
    INSERTED,
    MODIFIED,
    PARTITION_MISSING,
    REORDERED,
    SCHEMA,
    STALE_CHECKPOINT,
    TRUNCATED,
    UNAUTHENTICATED_RECORD,
    UNGUARDED_COLUMN,
    Finding,
    Uncovered,
)

# Re-exported: the finding kinds and Finding have always been imported from here.
__all__ = [
    "BAD_HORIZON",
    "BAD_SIGNATURE",
    "CHECKPOINT_MISMATCH",
    "CHECKPOINT_MISSING",
    "CHECKPOINT_NOT_WITNESSED",
    "COLUMN_MISMATCH",
    "DELETED",
    "DUPLICATE_EVENT",
    "GUARD_MISSING",
    "INSERTED",
    "MODIFIED",
    "PARTITION_MISSING",
    "REORDERED",
    "SCHEMA",
    "STALE_CHECKPOINT",
    "TRUNCATED",
    "UNAUTHENTICATED_RECORD",
    "UNGUARDED_COLUMN",
    "ChainVerifier",
    "Finding",
    "Report",
    "SignatureCheck",
    "Uncovered",
    "offline_signature_check",
    "schema_findings",
    "trusted_horizons",
    "verify_rows",
]

SignatureCheck = Callable[[bytes, str], bool]


@dataclass
class Report:
    records: int = 0
    checkpoints: int = 0
    findings: list[Finding] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # The retention horizon each pruned partition's chain was verified from.
    horizons: list[Horizon] = field(default_factory=list)
    uncovered: list[Uncovered] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def not_covered(self) -> int:
        return sum(u.records for u in self.uncovered)

    def summary(self) -> str:
        """E.g. "12 records, 2 checkpoints: verified; 3 records not yet covered"."""
        verdict = "verified" if self.ok else f"{len(self.findings)} findings"
        tail = f"; {self.not_covered} records not yet covered" if self.not_covered else ""
        return f"{self.records} records, {self.checkpoints} checkpoints: {verdict}{tail}"

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "records": self.records,
            "checkpoints": self.checkpoints,
            "findings": [
                {"partition": f.partition, "seq": f.seq, "finding": f.kind, "detail": f.detail}
                for f in self.findings
            ],
            "not_covered": [
                {"partition": u.partition, "after_seq": u.after_seq, "records": u.records}
                for u in self.uncovered
            ],
            "warnings": self.warnings,
            "horizons": [
                {
                    "partition": h.partition,
                    "seq": h.seq,
                    "cutoff": iso_utc(h.cutoff),
                    "pruned_at": iso_utc(h.pruned_at),
                    "records": h.records,
                }
                for h in self.horizons
            ],
        }


def offline_signature_check(public_keys: Mapping[int, bytes]) -> SignatureCheck:
    """Checks "vault:vN:<b64>" Ed25519 signatures against Transit's public keys, without Vault."""
    keys = {v: Ed25519PublicKey.from_public_bytes(raw) for v, raw in public_keys.items()}

    def check(payload: bytes, signature: str) -> bool:
        prefix, _, rest = signature.partition(":")
        version, _, encoded = rest.partition(":")
        number = version.removeprefix("v")
        usable = prefix == "vault" and version.startswith("v") and number.isdigit()
        key = keys.get(int(number)) if usable else None
        if key is None:
            return False
        try:
            key.verify(base64.b64decode(encoded, validate=True), payload)
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True

    return check


def _hash_at(row: Mapping[str, Any], seq: int) -> str | None:
    """The hash of the row's document re-encoded at `seq`: only for rows that failed as stored."""
    return hash_at_seq(row["document"], seq)


class _PartitionWalk:
    """One partition's chain, walked in seq order; failing rows are judged at the end."""

    def __init__(
        self,
        partition: int,
        checkpoint_seqs: set[int],
        start: Horizon | None = None,
        covered_to: int = 0,
    ) -> None:
        self.partition = partition
        self.findings: list[Finding] = []
        # Records past the newest validly signed checkpoint are counted, not vouched for.
        self.covered_to = covered_to
        self.uncovered = 0
        # A pruned chain starts at its horizon, whose record's hash the next record names.
        self.start = start
        self.last_seq = 0 if start is None else start.seq
        self.records = 0
        # Pruned records whose deletion has not finished yet: not walked.
        self.below_start = 0
        self._prev: str | None = GENESIS_HASH if start is None else start.hash
        self._seq_of: dict[str, int] = {} if start is None else {start.hash: start.seq}
        self._failing: dict[str, Mapping[str, Any]] = {}
        self._watch = checkpoint_seqs
        self.hash_at_checkpoint: dict[int, str] = {}

    def _found(self, seq: int, kind: str, detail: str = "") -> None:
        self.findings.append(Finding(self.partition, seq, kind, detail))

    def feed(self, row: Mapping[str, Any]) -> None:
        self.records += 1
        seq = int(row["seq"])
        if seq > self.covered_to:
            self.uncovered += 1
        if seq <= self.last_seq:
            self._found(seq, INSERTED, "a second record for this seq")
            return
        if seq > self.last_seq + 1:
            # Guarded: building an empty range per record costs verify about a tenth.
            for missing in range(self.last_seq + 1, seq):
                self._found(missing, DELETED)
                self._prev = None
        self.last_seq = seq
        stored = str(row["record_hash"])
        if stored in self._seq_of:
            self._found(seq, INSERTED, f"a copy of seq {self._seq_of[stored]}")
            return
        self._seq_of[stored] = seq
        # The stored bytes (stream_chained reads them as UTF-8) are what was hashed: no
        # re-encoding on the path every record takes.
        if sha256(row["document"]).hexdigest() != stored:
            self._failing[stored] = row
            self._prev = None
            return
        if seq in self._watch:
            self.hash_at_checkpoint[seq] = stored
        if self._prev is not None and row["prev_hash"] != self._prev:
            # Keep the last genuine hash: the record after an interloper chains to it.
            self._found(seq, INSERTED, "does not chain to the previous record")
            return
        self._prev = stored

    def _original_seq(self, prev_hash: str, depth: int = 0) -> int | None:
        """Where a record was chained: one past the record its prev_hash names."""
        if prev_hash == GENESIS_HASH:
            return 1
        owner = self._seq_of.get(prev_hash)
        if owner is None or depth > len(self._failing):
            return None
        failing = self._failing.get(prev_hash)
        if failing is None:
            return owner + 1
        before = self._original_seq(str(failing["prev_hash"]), depth + 1)
        return None if before is None else before + 1

    def finish(self) -> None:
        for stored, row in self._failing.items():
            seq = int(row["seq"])
            original = self._original_seq(str(row["prev_hash"]))
            if original is not None and original != seq and _hash_at(row, original) == stored:
                self._found(seq, REORDERED, f"was seq {original}")
            else:
                self._found(seq, MODIFIED)


def trusted_horizons(
    horizons: Iterable[Horizon], checkpoints: Iterable[Checkpoint], check: SignatureCheck
) -> tuple[dict[int, Horizon], list[Finding]]:
    """Each partition's highest trustworthy horizon, and a BAD HORIZON for every other one."""
    signed = {(c.partition, c.seq): c for c in checkpoints}
    starts: dict[int, Horizon] = {}
    found: list[Finding] = []
    for horizon in sorted(horizons, key=lambda h: (h.partition, h.seq)):
        problem = horizon_problem(horizon, signed.get((horizon.partition, horizon.seq)), check)
        if problem is None:
            starts[horizon.partition] = horizon
        else:
            found.append(Finding(horizon.partition, horizon.seq, BAD_HORIZON, problem))
    return starts, found


class ChainVerifier:
    """Feed rows in (partition, seq, id) order, then `finish()` for the report. With `now` and
    `max_age`, checkpoints older than `max_age` at `now` are stale. `whole_store` False: fed
    part of the store (prune verifies one partition), whose signed partition sets name others."""

    def __init__(
        self,
        checkpoints: Iterable[Checkpoint],
        check_signature: SignatureCheck,
        head_seqs: Mapping[int, int] | None = None,
        horizons: Iterable[Horizon] = (),
        *,
        now: datetime | None = None,
        max_age: timedelta | None = None,
        whole_store: bool = True,
    ) -> None:
        self._checkpoints = sorted(checkpoints, key=lambda c: (c.partition, c.seq))
        self._check = check_signature
        # Each signature checked once: heartbeats make checkpoints many.
        self._valid = {
            cp for cp in self._checkpoints if check_signature(cp.payload(), cp.signature)
        }
        self._chain = CheckpointChain(self._valid, now, max_age, whole_store)
        self._starts, self._horizon_findings = trusted_horizons(
            horizons, self._checkpoints, check_signature
        )
        # The service's own chain heads: not trusted, but they catch a naive cut of the tail
        # beyond the last checkpoint.
        self._head_seqs = dict(head_seqs or {})
        self._walks: dict[int, _PartitionWalk] = {}
        self._current: _PartitionWalk | None = None

    def _covered_to(self, partition: int) -> int:
        return max((c.seq for c in self._valid if c.partition == partition), default=0)

    def _walk(self, partition: int) -> _PartitionWalk:
        if self._current is None or self._current.partition != partition:
            watch = {c.seq for c in self._checkpoints if c.partition == partition}
            start = self._starts.get(partition)
            walk = self._walks.get(partition)
            if walk is None:
                walk = _PartitionWalk(partition, watch, start, self._covered_to(partition))
                self._walks[partition] = walk
            self._current = walk
        return self._current

    def feed(self, row: Mapping[str, Any]) -> None:
        walk = self._walk(int(row["chain_partition"]))
        if walk.start is not None and int(row["seq"]) <= walk.start.seq:
            walk.below_start += 1
            return
        walk.feed(row)

    def _note_pruning(self, walk: _PartitionWalk, report: Report) -> None:
        if walk.start is None:
            return
        report.horizons.append(walk.start)
        if walk.below_start:
            report.warnings.append(
                f"partition {walk.partition}: {walk.below_start} records at or below the "
                f"retention horizon (seq {walk.start.seq}) await deletion; prune removes them"
            )

    def _judge_checkpoint(self, walk: _PartitionWalk, cp: Checkpoint) -> Finding | None:
        if cp not in self._valid:
            return Finding(cp.partition, cp.seq, BAD_SIGNATURE)
        if cp.seq > walk.last_seq:
            detail = f"chain ends at seq {walk.last_seq}, signed up to seq {cp.seq}"
            return Finding(cp.partition, walk.last_seq + 1, TRUNCATED, detail)
        recorded = walk.hash_at_checkpoint.get(cp.seq)
        if recorded is not None and recorded != cp.hash:
            return Finding(cp.partition, cp.seq, CHECKPOINT_MISMATCH)
        return None

    def _judge_checkpoints(self, walk: _PartitionWalk, mine: list[Checkpoint]) -> list[Finding]:
        found: list[Finding] = []
        truncated = False
        for cp in reversed(mine):
            finding = self._judge_checkpoint(walk, cp)
            if finding is None or (finding.kind == TRUNCATED and truncated):
                continue
            truncated = truncated or finding.kind == TRUNCATED
            found.append(finding)
        return found

    def _judge_head(self, walk: _PartitionWalk, found: list[Finding]) -> list[Finding]:
        head = self._head_seqs.get(walk.partition, 0)
        if head <= walk.last_seq or any(f.kind == TRUNCATED for f in found):
            return []
        detail = f"chain ends at seq {walk.last_seq}, its head is at seq {head}"
        return [Finding(walk.partition, walk.last_seq + 1, TRUNCATED, detail)]

    def _judge_partition(self, walk: _PartitionWalk, named: set[int], report: Report) -> None:
        walk.finish()
        self._note_pruning(walk, report)
        report.records += walk.records
        if walk.uncovered:
            report.uncovered.append(Uncovered(walk.partition, walk.covered_to, walk.uncovered))
        mine = [c for c in self._checkpoints if c.partition == walk.partition]
        found = walk.findings + self._judge_checkpoints(walk, mine)
        found += self._chain.judge(walk.partition, mine)
        if not mine:
            first = 1 if walk.start is None else walk.start.seq + 1
            records = walk.records + walk.below_start
            unsigned = self._chain.judge_unsigned(walk.partition, first, records, named)
            if unsigned is None:
                report.warnings.append(f"partition {walk.partition}: no checkpoints")
            found += unsigned or []
        report.findings.extend(found + self._judge_head(walk, found))

    def finish(self) -> Report:
        report = Report(checkpoints=len(self._checkpoints))
        named = self._chain.named()
        partitions = {*self._walks, *self._head_seqs, *(c.partition for c in self._checkpoints)}
        for partition in sorted(partitions | set(self._starts) | named):
            start = self._starts.get(partition)
            walk = self._walks.get(partition) or _PartitionWalk(
                partition, set(), start, self._covered_to(partition)
            )
            self._judge_partition(walk, named, report)
        report.findings.extend(self._horizon_findings)
        report.findings.sort()
        return report


def schema_findings(unguarded: Iterable[str]) -> list[Finding]:
    """Query columns no longer derived from the hashed document: verify cannot vouch for them."""
    return [Finding(SCHEMA, 0, UNGUARDED_COLUMN, problem) for problem in unguarded]


def verify_rows(
    rows: Iterable[Mapping[str, Any]],
    checkpoints: Iterable[Checkpoint],
    check_signature: SignatureCheck,
    head_seqs: Mapping[int, int] | None = None,
    horizons: Iterable[Horizon] = (),
    *,
    now: datetime | None = None,
    max_age: timedelta | None = None,
) -> Report:
    verifier = ChainVerifier(
        checkpoints, check_signature, head_seqs, horizons, now=now, max_age=max_age
    )
    for row in rows:
        verifier.feed(row)
    return verifier.finish()
