"""Hold the store to the checkpoints an outside witness kept. Pure: no I/O.

A database superuser can delete or rewrite any checkpoint row, but not the copies held where they
cannot write: the `audit.checkpoints` stream and the security team's exported file. Every
witnessed checkpoint whose signature verifies is compared with the database's by (partition,
number) and then judged against the chains like a stored one, so deleting checkpoints no longer
hides the records they covered. A witnessed checkpoint whose signature does not verify is
reported and never trusted: anyone who can write to the stream can put one there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from moment_audit.domain.checkpoints import Checkpoint
from moment_audit.service.verify import (
    CHECKPOINT_MISMATCH,
    CHECKPOINT_MISSING,
    Finding,
    Report,
    SignatureCheck,
)

MISSING_DETAIL = "witnessed, not in the database"
DIFFERS_DETAIL = "differs from the witness"

Key = tuple[int, int]


def key_of(checkpoint: Checkpoint) -> Key:
    """Where a chained checkpoint sits: its partition and number."""
    return checkpoint.partition, checkpoint.number or 0


def same(a: Checkpoint, b: Checkpoint) -> bool:
    """Equal as signed: the signed bytes and the signature (stored datetimes differ in zone)."""
    return a.payload() == b.payload() and a.signature == b.signature


def describe(checkpoint: Checkpoint) -> str:
    return f"partition {checkpoint.partition} number {checkpoint.number} (seq {checkpoint.seq})"


def chained(checkpoints: Iterable[Checkpoint]) -> dict[Key, Checkpoint]:
    """The chained checkpoints by (partition, number); unchained ones have no place to compare."""
    return {key_of(c): c for c in checkpoints if c.chained}


@dataclass
class Merge:
    """What merging fresh checkpoints into those a witness holds gives."""

    checkpoints: list[Checkpoint]
    added: list[Checkpoint] = field(default_factory=list)
    # (held, fresh) pairs that disagree: evidence, never overwritten.
    conflicts: list[tuple[Checkpoint, Checkpoint]] = field(default_factory=list)


def merge(held: Iterable[Checkpoint], fresh: Iterable[Checkpoint]) -> Merge:
    """Keep everything held, add what is new, and name every (partition, number) that differs."""
    kept = chained(held)
    result = Merge([])
    for checkpoint in fresh:
        if not checkpoint.chained:
            continue
        known = kept.get(key_of(checkpoint))
        if known is None:
            kept[key_of(checkpoint)] = checkpoint
            result.added.append(checkpoint)
        elif not same(known, checkpoint):
            result.conflicts.append((known, checkpoint))
    result.checkpoints = [kept[k] for k in sorted(kept)]
    return result


@dataclass
class Judgement:
    findings: list[Finding] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Validly signed witnessed checkpoints the store does not hold as they are: the chains must
    # be judged against them too.
    trusted: list[Checkpoint] = field(default_factory=list)


def _distinct(witnessed: Iterable[Checkpoint]) -> list[Checkpoint]:
    """The file and the stream usually hold the same checkpoint: judge each one once."""
    seen: list[Checkpoint] = []
    for checkpoint in witnessed:
        if checkpoint.chained and not any(same(checkpoint, s) for s in seen):
            seen.append(checkpoint)
    return seen


def judge_witnessed(
    stored: Iterable[Checkpoint], witnessed: Iterable[Checkpoint], check: SignatureCheck
) -> Judgement:
    """CHECKPOINT MISSING or CHECKPOINT MISMATCH for each validly signed witnessed checkpoint the
    database lacks or holds otherwise; a warning for each one whose signature fails."""
    held = chained(stored)
    judgement = Judgement()
    vouched: set[Key] = set()
    for checkpoint in sorted(_distinct(witnessed), key=key_of):
        if not check(checkpoint.payload(), checkpoint.signature):
            judgement.warnings.append(
                f"witnessed checkpoint {describe(checkpoint)}: signature does not verify, "
                "not trusted"
            )
            continue
        vouched.add(key_of(checkpoint))
        mine = held.get(key_of(checkpoint))
        if mine is not None and same(mine, checkpoint):
            continue
        kind, detail = (
            (CHECKPOINT_MISSING, MISSING_DETAIL)
            if mine is None
            else (CHECKPOINT_MISMATCH, DIFFERS_DETAIL)
        )
        finding = Finding(checkpoint.partition, checkpoint.seq, kind, detail)
        if finding not in judgement.findings:
            judgement.findings.append(finding)
        judgement.trusted.append(checkpoint)
    judgement.warnings.extend(_unwitnessed(held, vouched))
    return judgement


def _unwitnessed(held: dict[Key, Checkpoint], vouched: set[Key]) -> list[str]:
    """Stored checkpoints no witness vouches for: newer than the file, not relayed yet, or kept
    from the stream (their outbox rows marked sent by someone who holds the database)."""
    if not vouched:
        return []
    numbers: dict[int, list[int]] = {}
    for partition, number in sorted(set(held) - vouched):
        numbers.setdefault(partition, []).append(number)
    return [
        f"partition {p}: {len(n)} stored checkpoints (numbers {n[0]}-{n[-1]}) are not witnessed"
        for p, n in numbers.items()
    ]


def add_witness(report: Report, judgement: Judgement, stored: int) -> None:
    """Fold the witness's judgement into a report whose chains were judged with it."""
    # The report counts what the database holds, not what the witness lent it.
    report.checkpoints = stored
    report.findings.extend(f for f in judgement.findings if f not in report.findings)
    report.findings.sort()
    report.warnings.extend(judgement.warnings)
