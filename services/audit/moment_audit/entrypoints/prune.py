"""`moment-audit prune`: retention, run as its own job under the retention database role."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from moment_audit.adapters.orm import metadata
from moment_audit.adapters.retention import TransitSignatures
from moment_audit.config import AuditSettings
from moment_audit.domain.retention import parse_duration
from moment_audit.service.retention import Pruner, PruneReport
from moment_crypto.errors import CryptoError
from moment_crypto.vault import VaultClient
from moment_persistence.database import Database
from moment_persistence.errors import PersistenceError
from moment_persistence.unit_of_work import SqlUnitOfWork
from moment_settings.loader import load_settings

# Exit codes: 1 when a partition's chain did not verify, so it was not pruned; 2 when prune could
# not run at all.
EXIT_REFUSED = 1
EXIT_CANNOT_PRUNE = 2


class NoVault(Exception):
    """Pruning checks checkpoint signatures and signs its horizons: it needs the Transit key."""


def _cutoff(older_than: str | None, before: str | None, period: timedelta) -> datetime:
    if older_than is not None and before is not None:
        raise typer.BadParameter("give --older-than or --before, not both")
    now = datetime.now(UTC)
    if before is not None:
        try:
            instant = datetime.fromisoformat(before)
        except ValueError:
            raise typer.BadParameter(f"not an ISO 8601 time: {before!r}") from None
        cutoff = instant if instant.tzinfo else instant.replace(tzinfo=UTC)
        if cutoff > now:
            raise typer.BadParameter("the cut-off is in the future")
        return cutoff
    if older_than is None:
        return now - period
    try:
        return now - parse_duration(older_than)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


async def _prune(settings: AuditSettings, cutoff: datetime, dry_run: bool) -> PruneReport:
    if settings.vault is None:
        raise NoVault("pruning needs Vault: it checks checkpoint signatures and signs horizons")
    database = Database(settings.database)
    try:
        async with VaultClient(settings.vault) as vault:
            pruner = Pruner(
                lambda: SqlUnitOfWork(database, metadata=metadata),
                TransitSignatures(vault, settings.checkpoints.key_name),
                settings.retention.batch_size,
            )
            return await pruner.run(cutoff, dry_run=dry_run)
    finally:
        await database.dispose()


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _table(report: PruneReport) -> Table:
    verb = "would prune" if report.dry_run else "pruned"
    table = Table(title=f"{report.records} records {verb}, cut-off {_when(report.cutoff)} UTC")
    for heading in ("partition", "from seq", "to seq", "signed (UTC)", "records", "deleted"):
        table.add_column(heading, justify="right")
    table.add_column("status")
    for p in report.partitions:
        table.add_row(
            str(p.partition),
            str(p.after_seq),
            "-" if p.to_seq is None else str(p.to_seq),
            _when(p.checkpoint_signed_at),
            str(p.records),
            str(p.deleted),
            p.status(dry_run=report.dry_run),
        )
    return table


def _show(report: PruneReport) -> None:
    Console().print(_table(report))
    for outcome in report.partitions:
        for finding in outcome.findings:
            typer.echo(f"refused: {finding.line()}")


def prune(
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            help="e.g. 400d, 12h, 1d12h (default: MOMENT_AUDIT_RETENTION__PERIOD).",
        ),
    ] = None,
    before: Annotated[
        str | None,
        typer.Option(help="An ISO 8601 cut-off instead (UTC if no offset), not in the future."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Verify and report, change nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Prune records older than the retention period; every chain still verifies afterwards.

    Each partition is cut at its newest checkpoint signed before the cut-off whose records are all
    older than it, after verifying the chain up to there. Exit 1 if a chain did not verify.
    """
    settings = load_settings(AuditSettings)
    cutoff = _cutoff(older_than, before, settings.retention.period)
    try:
        report = asyncio.run(_prune(settings, cutoff, dry_run))
    except (NoVault, CryptoError, PersistenceError) as exc:
        typer.echo(f"moment-audit prune: {exc}", err=True)
        raise typer.Exit(EXIT_CANNOT_PRUNE) from None
    if as_json:
        typer.echo(json.dumps(report.as_json()))
    else:
        _show(report)
    raise typer.Exit(0 if report.ok else EXIT_REFUSED)
