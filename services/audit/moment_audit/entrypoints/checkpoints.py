"""`moment-audit checkpoints export | import`: the witness file the security team keeps.

Export writes every validly signed checkpoint, from the database or from `audit.checkpoints`, to
a file of one CheckpointSigned JSON object per line (adapters/witness_file.py). Exporting into an
existing file merges: what the file holds stays, new checkpoints are added, and a checkpoint that
now differs from the file's for the same partition and number refuses the whole export, because
the file is the evidence. Import puts witnessed checkpoints the database lacks back, once every
signature verifies and none contradicts the database. `moment-audit verify --witness FILE
--witness-stream` holds the store to them (service/witness.py).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer

from moment_audit.adapters.checkpoint_stream import StreamUnavailable, read_checkpoint_stream
from moment_audit.adapters.checkpoints import SqlCheckpointStore
from moment_audit.adapters.orm import metadata
from moment_audit.adapters.retention import TransitSignatures
from moment_audit.adapters.witness_file import WitnessFileError, read_witness, write_witness
from moment_audit.config import AuditSettings
from moment_audit.domain.checkpoints import Checkpoint
from moment_audit.service.verify import SignatureCheck
from moment_audit.service.witness import Merge, chained, describe, key_of, merge, same
from moment_crypto.errors import CryptoError
from moment_crypto.vault import VaultClient
from moment_persistence.database import Database
from moment_persistence.errors import PersistenceError
from moment_persistence.unit_of_work import SqlUnitOfWork
from moment_settings.loader import load_settings

# 1: refused (a conflict, a bad signature: evidence, nothing overwritten); 2: could not run.
EXIT_REFUSED = 1
EXIT_CANNOT_RUN = 2

app = typer.Typer(
    name="checkpoints",
    help="Export signed checkpoints to a witness file, or import them back.",
    no_args_is_help=True,
)


class Refused(Exception):
    """The command would contradict or trust what it must not: each line says why."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("; ".join(lines))
        self.lines = lines


class WitnessUnavailable(Exception):
    """verify could not read a witness it was given: it verifies nothing (exit 2)."""


class NoVault(Exception):
    """Every checkpoint's signature is checked with the Transit key's public keys."""


@dataclass
class Checked:
    valid: list[Checkpoint] = field(default_factory=list)
    invalid: list[Checkpoint] = field(default_factory=list)


async def signature_check(settings: AuditSettings, checkpoints: list[Checkpoint]) -> SignatureCheck:
    if settings.vault is None:
        raise NoVault("checking checkpoint signatures needs Vault (MOMENT_AUDIT_VAULT__*)")
    async with VaultClient(settings.vault) as vault:
        signatures = TransitSignatures(vault, settings.checkpoints.key_name)
        return await signatures.checker([(c.payload(), c.signature) for c in checkpoints])


async def checked(settings: AuditSettings, checkpoints: list[Checkpoint]) -> Checked:
    check = await signature_check(settings, checkpoints)
    result = Checked()
    for checkpoint in checkpoints:
        good = check(checkpoint.payload(), checkpoint.signature)
        (result.valid if good else result.invalid).append(checkpoint)
    return result


async def stored_checkpoints(settings: AuditSettings) -> list[Checkpoint]:
    database = Database(settings.database)
    try:
        async with database.sessionmaker() as session:
            return [c for c in await SqlCheckpointStore(session).all() if c.chained]
    finally:
        await database.dispose()


async def _source(settings: AuditSettings, from_stream: bool) -> list[Checkpoint]:
    if not from_stream:
        return await stored_checkpoints(settings)
    read = await read_checkpoint_stream(settings.kafka)
    for warning in read.warnings:
        typer.echo(f"warning: {warning}", err=True)
    return read.checkpoints


async def _export(
    settings: AuditSettings, held: list[Checkpoint], out: Path, from_stream: bool
) -> tuple[Merge, int]:
    """The file's new content, and how many were not exported for a bad signature."""
    found = await _source(settings, from_stream)
    # Any disagreement is evidence, a badly signed checkpoint in place of a held one included.
    conflicts = merge(held, found).conflicts
    if conflicts:
        raise Refused(
            [
                f"{describe(held_one)}: the {'stream' if from_stream else 'database'} holds a "
                f"different checkpoint than {out}; the file is evidence and was left unchanged"
                for held_one, _ in conflicts
            ]
        )
    fresh = await checked(settings, found)
    merged = merge(held, fresh.valid)
    for bad in fresh.invalid:
        typer.echo(f"not exported: {describe(bad)}: signature does not verify", err=True)
    return merged, len(fresh.invalid)


@app.command("export")
def export_command(
    out: Annotated[Path, typer.Option("--out", help="The witness file; merged into if it exists.")],
    from_stream: Annotated[
        bool,
        typer.Option("--from-stream", help="Read audit.checkpoints instead of the database."),
    ] = False,
) -> None:
    """Write every validly signed checkpoint to a witness file, one JSON object per line."""
    settings = load_settings(AuditSettings)
    try:
        held = read_witness(out) if out.exists() else []
        merged, bad = asyncio.run(_export(settings, held, out, from_stream))
        write_witness(out, merged.checkpoints)
    except (Refused, WitnessFileError) as exc:
        for line in exc.lines if isinstance(exc, Refused) else [str(exc)]:
            typer.echo(f"moment-audit checkpoints export: refused: {line}", err=True)
        raise typer.Exit(EXIT_REFUSED) from None
    except (NoVault, CryptoError, PersistenceError, StreamUnavailable, OSError) as exc:
        typer.echo(f"moment-audit checkpoints export: {exc}", err=True)
        raise typer.Exit(EXIT_CANNOT_RUN) from None
    typer.echo(f"{len(merged.checkpoints)} checkpoints in {out} ({len(merged.added)} new)")
    raise typer.Exit(EXIT_REFUSED if bad else 0)


def _refusals(
    witnessed: list[Checkpoint], invalid: list[Checkpoint], stored: list[Checkpoint]
) -> list[str]:
    lines = [f"{describe(c)}: signature does not verify" for c in invalid]
    held = chained(stored)
    for checkpoint in witnessed:
        mine = held.get(key_of(checkpoint))
        if mine is not None and not same(mine, checkpoint):
            lines.append(f"{describe(checkpoint)}: the database holds a different checkpoint")
    return lines


async def _import(settings: AuditSettings, in_file: list[Checkpoint]) -> tuple[int, int]:
    """(restored, already held)."""
    unique = merge([], in_file)
    if unique.conflicts:
        raise Refused([f"{describe(a)}: the file holds two of it" for a, _ in unique.conflicts])
    witnessed = unique.checkpoints
    verdict = await checked(settings, witnessed)
    database = Database(settings.database)
    try:
        async with SqlUnitOfWork(database, metadata=metadata) as uow:
            store = SqlCheckpointStore(uow.session)
            stored = [c for c in await store.all() if c.chained]
            refusals = _refusals(witnessed, verdict.invalid, stored)
            if refusals:
                raise Refused(refusals)
            held = chained(stored)
            missing = [c for c in verdict.valid if key_of(c) not in held]
            for checkpoint in missing:
                await store.add(checkpoint)
            await uow.commit()
    finally:
        await database.dispose()
    return len(missing), len(witnessed) - len(missing)


@app.command("import")
def import_command(
    path: Annotated[Path, typer.Argument(help="A witness file written by export.")],
) -> None:
    """Put witnessed checkpoints the database lacks back (all or nothing)."""
    settings = load_settings(AuditSettings)
    try:
        restored, held = asyncio.run(_import(settings, read_witness(path)))
    except (Refused, WitnessFileError) as exc:
        lines = exc.lines if isinstance(exc, Refused) else [str(exc)]
        for line in lines:
            typer.echo(f"moment-audit checkpoints import: refused: {line}", err=True)
        raise typer.Exit(EXIT_REFUSED) from None
    except (NoVault, CryptoError, PersistenceError) as exc:
        typer.echo(f"moment-audit checkpoints import: {exc}", err=True)
        raise typer.Exit(EXIT_CANNOT_RUN) from None
    typer.echo(f"{restored} checkpoints restored ({held} already in the database)")


def witnessed_checkpoints(
    settings: AuditSettings, files: list[Path], stream: bool
) -> tuple[list[Checkpoint], list[str]]:
    """What `verify --witness FILE --witness-stream` holds the store to, and the warnings of
    reading it. Signatures are checked by verify itself."""
    try:
        witnessed = [c for path in files for c in read_witness(path)]
        if not stream:
            return witnessed, []
        read = asyncio.run(read_checkpoint_stream(settings.kafka))
    except (WitnessFileError, StreamUnavailable) as exc:
        raise WitnessUnavailable(str(exc)) from None
    return witnessed + read.checkpoints, read.warnings
