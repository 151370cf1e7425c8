"""The witness file: every signed checkpoint, one CheckpointSigned JSON object per line.

The security team keeps it where the database's administrators cannot write. Each line holds the
fields the signature covers plus the signature, so anyone with the checkpoint key's public keys
can check it offline. `created_at` is written exactly as the signed payload spells it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError

from moment_audit.domain.chain import iso_utc
from moment_audit.domain.checkpoints import Checkpoint
from moment_contracts.audit_chain import CheckpointSigned

# A line longer than this is not a checkpoint (the partition set is bounded by the contract).
MAX_LINE = 200_000


class WitnessFileError(Exception):
    """The witness file cannot be read as checkpoints: nothing is trusted, nothing overwritten."""


def to_line(checkpoint: Checkpoint) -> str:
    """One checkpoint as the contract's JSON, keys sorted (a chained checkpoint only)."""
    return json.dumps(
        {
            "partition": checkpoint.partition,
            "number": checkpoint.number,
            "seq": checkpoint.seq,
            "hash": checkpoint.hash,
            "created_at": iso_utc(checkpoint.created_at),
            "prev": checkpoint.prev,
            "partitions": sorted(set(checkpoint.partitions)),
            "signature": checkpoint.signature,
        },
        sort_keys=True,
        separators=(",", ":"),
    )


def of_contract(body: CheckpointSigned) -> Checkpoint:
    return Checkpoint(
        body.partition,
        body.seq,
        body.hash,
        body.created_at,
        body.signature,
        body.number,
        body.prev,
        tuple(body.partitions),
    )


def from_line(line: str) -> Checkpoint:
    """Parse one line; ValueError (naming no value) when it is not a signed checkpoint."""
    if len(line) > MAX_LINE:
        raise ValueError(f"{len(line)} characters, more than any checkpoint")
    try:
        return of_contract(CheckpointSigned.model_validate_json(line))
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in e["loc"]) or "line" for e in exc.errors()})
        raise ValueError(f"not a signed checkpoint ({', '.join(fields)})") from None


def read_witness(path: Path) -> list[Checkpoint]:
    """Every checkpoint in the file; WitnessFileError naming the first line that is not one."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WitnessFileError(f"{path}: cannot be read ({type(exc).__name__})") from None
    checkpoints: list[Checkpoint] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            checkpoints.append(from_line(line))
        except ValueError as exc:
            raise WitnessFileError(f"{path} line {number}: {exc}") from None
    return checkpoints


def write_witness(path: Path, checkpoints: Iterable[Checkpoint]) -> None:
    """Replace the file in one rename, so a crash leaves the old file or the new one, whole."""
    lines = "".join(to_line(c) + "\n" for c in checkpoints)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or Path())
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(lines)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
