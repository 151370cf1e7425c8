"""`moment-audit run | migrate | asyncapi | verify`."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from sqlalchemy import func, select

from moment_audit.adapters.checkpoints import SqlCheckpointStore
from moment_audit.adapters.kafka import register_handlers
from moment_audit.adapters.orm import audit_records
from moment_audit.adapters.repositories import SqlAuditStore
from moment_audit.bootstrap import MIGRATIONS, build
from moment_audit.config import AuditSettings
from moment_audit.domain.chain import checkpoint_payload
from moment_audit.service.verify import (
    ChainVerifier,
    Checkpoint,
    Report,
    SignatureCheck,
    offline_signature_check,
)
from moment_contracts import topics
from moment_contracts.base import Contract
from moment_contracts.catalogue import TOPIC_MESSAGES
from moment_crypto.errors import CryptoError, VaultPermissionDenied
from moment_crypto.vault import VaultClient
from moment_persistence.database import Database
from moment_persistence.errors import PersistenceError
from moment_runtime.cli import service_cli
from moment_runtime.docs import document, not_at_docs_time
from moment_settings.loader import load_settings

PUBLICATIONS: dict[str, tuple[type[Contract], ...]] = {
    topic: TOPIC_MESSAGES[topic]
    for topic in (topics.AUDIT_CHECKPOINTS, topics.AUDIT_OCSF, topics.AUDIT_ALERTS)
}
# verify exits with this when it could not run at all (as opposed to 1: something failed to verify).
EXIT_CANNOT_VERIFY = 2


def asyncapi() -> str:
    return document("audit", lambda b, c: register_handlers(b, c, not_at_docs_time), PUBLICATIONS)


app = service_cli("audit", AuditSettings, build, MIGRATIONS, asyncapi)


class NoSignatureCheck(Exception):
    """Checkpoints exist but there is no Vault configured to check their signatures."""


async def _online_check(
    vault: VaultClient, key: str, checkpoints: list[Checkpoint]
) -> SignatureCheck:
    # Only when the role may not read the public keys: one Vault call per checkpoint.
    verdicts: dict[tuple[bytes, str], bool] = {}
    for cp in checkpoints:
        payload = checkpoint_payload(cp.partition, cp.seq, cp.hash, cp.created_at)
        verdicts[payload, cp.signature] = await vault.verify(key, payload, cp.signature)
    return lambda payload, signature: verdicts.get((payload, signature), False)


async def _signature_check(
    settings: AuditSettings, checkpoints: list[Checkpoint]
) -> SignatureCheck:
    if not checkpoints:
        return lambda _payload, _signature: False
    if settings.vault is None:
        raise NoSignatureCheck(f"{len(checkpoints)} checkpoints, and no Vault to check them")
    key = settings.checkpoints.key_name
    async with VaultClient(settings.vault) as vault:
        try:
            return offline_signature_check(await vault.transit_public_keys(key))
        except VaultPermissionDenied:
            return await _online_check(vault, key, checkpoints)


async def _verify(settings: AuditSettings, on_row: Callable[[int | None], None]) -> Report:
    database = Database(settings.database)
    try:
        async with database.sessionmaker() as session:
            checkpoints = await SqlCheckpointStore(session).all()
            check = await _signature_check(settings, checkpoints)
            on_row(await session.scalar(select(func.count()).select_from(audit_records)))
            store = SqlAuditStore(session)
            heads = {head.partition: head.seq for head in await store.heads()}
            verifier = ChainVerifier(checkpoints, check, heads)
            async for row in store.stream_chained():
                verifier.feed(row)
                on_row(None)
            return verifier.finish()
    finally:
        await database.dispose()


def _run_with_progress(settings: AuditSettings, show: bool) -> Report:
    with Progress(console=Console(stderr=True), disable=not show, transient=True) as progress:
        task = progress.add_task("verifying audit chains", total=None)

        def on_row(total: int | None) -> None:
            if total is not None:
                progress.update(task, total=total)
            else:
                progress.advance(task)

        return asyncio.run(_verify(settings, on_row))


@app.command()
def verify(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Recompute every chain and check every checkpoint signature. Exit 0 only if all verifies."""
    settings = load_settings(AuditSettings)
    try:
        report = _run_with_progress(settings, show=not as_json and sys.stderr.isatty())
    except (NoSignatureCheck, CryptoError, PersistenceError) as exc:
        typer.echo(f"moment-audit verify: {exc}", err=True)
        raise typer.Exit(EXIT_CANNOT_VERIFY) from None
    if as_json:
        typer.echo(json.dumps(report.as_json()))
    else:
        for finding in report.findings:
            typer.echo(finding.line())
        for warning in report.warnings:
            typer.echo(f"warning: {warning}")
        verdict = "verified" if report.ok else f"{len(report.findings)} findings"
        typer.echo(f"{report.records} records, {report.checkpoints} checkpoints: {verdict}")
    raise typer.Exit(0 if report.ok else 1)


def main() -> None:
    app()
