"""`moment-audit run | migrate | asyncapi | verify | prune | search | tail`."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from faststream.kafka import KafkaBroker
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import func, select

from moment_audit.adapters.kafka import register_handlers, register_revocations
from moment_audit.adapters.orm import audit_records, metadata
from moment_audit.bootstrap import MIGRATIONS, build
from moment_audit.config import AuditSettings
from moment_audit.domain.chain import iso_utc
from moment_audit.domain.checkpoints import Checkpoint
from moment_audit.entrypoints.checkpoints import WitnessUnavailable, witnessed_checkpoints
from moment_audit.entrypoints.checkpoints import app as checkpoints_app
from moment_audit.entrypoints.prune import prune
from moment_audit.entrypoints.roles import db_roles
from moment_audit.service.queries import AccessQuery, entries_after, search
from moment_audit.service.record_keys import config_record_macs
from moment_audit.service.verification import NoSignatureCheck, config_signatures, verify_store
from moment_audit.service.verify import Report
from moment_audit.service.watch import alert_findings
from moment_contracts import topics
from moment_contracts.audit_queries import MAX_LIMIT, AccessEntry, AccessHistory
from moment_contracts.base import Contract
from moment_contracts.catalogue import AUDIT_REPLIES, TOPIC_MESSAGES
from moment_contracts.errors import ErrorReply
from moment_crypto.errors import CryptoError
from moment_messaging.config import KafkaConfig
from moment_persistence.database import Database
from moment_persistence.errors import PersistenceError
from moment_persistence.unit_of_work import SqlUnitOfWork
from moment_runtime.cli import service_cli
from moment_runtime.docs import document, not_at_docs_time
from moment_settings.loader import load_settings

PUBLICATIONS: dict[str, tuple[type[Contract], ...]] = {
    topic: TOPIC_MESSAGES[topic]
    for topic in (topics.AUDIT_CHECKPOINTS, topics.AUDIT_OCSF, topics.AUDIT_ALERTS)
} | {"replies.{instance}": (*AUDIT_REPLIES, ErrorReply)}
# verify exits with this when it could not run at all (as opposed to 1: something failed to verify).
EXIT_CANNOT_VERIFY = 2
# How often `tail --follow` looks for new records.
TAIL_POLL_S = 0.5


def _document_handlers(broker: KafkaBroker, config: KafkaConfig) -> None:
    register_handlers(
        broker, config, not_at_docs_time, queries=not_at_docs_time, gate=not_at_docs_time
    )
    register_revocations(broker, config, not_at_docs_time)


def asyncapi() -> str:
    return document("audit", _document_handlers, PUBLICATIONS)


app = service_cli("audit", AuditSettings, build, MIGRATIONS, asyncapi)
app.command("db-roles")(db_roles)
app.command()(prune)
app.add_typer(checkpoints_app)


async def _verify(
    settings: AuditSettings,
    on_row: Callable[[int | None], None],
    alert: bool = False,
    witnessed: list[Checkpoint] | None = None,
    max_age: timedelta | None = None,
) -> Report:
    database = Database(settings.database)
    try:
        signatures = config_signatures(settings.vault, settings.checkpoints.key_name)
        macs = await config_record_macs(settings.vault, settings.records.key_path)
        async with database.sessionmaker() as session:
            report = await verify_store(
                session, signatures, on_row, witnessed, max_age=max_age, record_macs=macs
            )
        if alert:
            # The running service's outbox relay publishes them to audit.alerts.
            async with SqlUnitOfWork(database, metadata=metadata) as uow:
                raised = await alert_findings(uow, report, settings.watch.max_verification_alerts)
            typer.echo(f"{len(raised)} new verification-failed alerts outboxed", err=True)
        return report
    finally:
        await database.dispose()


def _run_with_progress(
    settings: AuditSettings,
    show: bool,
    alert: bool = False,
    witnessed: list[Checkpoint] | None = None,
    max_age: timedelta | None = None,
) -> Report:
    with Progress(console=Console(stderr=True), disable=not show, transient=True) as progress:
        task = progress.add_task("verifying audit chains", total=None)

        def on_row(total: int | None) -> None:
            if total is not None:
                progress.update(task, total=total)
            else:
                progress.advance(task)

        return asyncio.run(_verify(settings, on_row, alert, witnessed, max_age))


@app.command()
def verify(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    alert: Annotated[
        bool,
        typer.Option(
            "--alert",
            help="Also raise a verification-failed alert per new finding, through the outbox.",
        ),
    ] = False,
    witness: Annotated[
        list[Path] | None,
        typer.Option(
            "--witness", help="A witness file (checkpoints export): hold the store to it."
        ),
    ] = None,
    witness_stream: Annotated[
        bool,
        typer.Option("--witness-stream", help="Hold the store to audit.checkpoints too."),
    ] = False,
    max_age: Annotated[
        float | None,
        typer.Option(
            "--max-age",
            min=0,
            help="Seconds a partition's newest checkpoint may be old before it is a STALE "
            "CHECKPOINT (default MOMENT_AUDIT_CHECKPOINTS__MAX_AGE_S; 0: no limit).",
        ),
    ] = None,
) -> None:
    """Recompute every chain and check every checkpoint signature. Exit 0 only if all verifies;
    records past the newest checkpoint are reported as not yet covered."""
    settings = load_settings(AuditSettings)
    seconds = settings.checkpoints.max_age_s if max_age is None else max_age
    age = timedelta(seconds=seconds) if seconds else None
    try:
        witnessed, read = witnessed_checkpoints(settings, witness or [], witness_stream)
        report = _run_with_progress(
            settings, not as_json and sys.stderr.isatty(), alert, witnessed, age
        )
        report.warnings[:0] = read
    except (NoSignatureCheck, CryptoError, PersistenceError, WitnessUnavailable) as exc:
        typer.echo(f"moment-audit verify: {exc}", err=True)
        raise typer.Exit(EXIT_CANNOT_VERIFY) from None
    if as_json:
        typer.echo(json.dumps(report.as_json()))
    else:
        for finding in report.findings:
            typer.echo(finding.line())
        for warning in report.warnings:
            typer.echo(f"warning: {warning}")
        for h in report.horizons:
            typer.echo(
                f"horizon: partition {h.partition} starts after seq {h.seq} "
                f"(cut-off {iso_utc(h.cutoff)}, pruned {iso_utc(h.pruned_at)})"
            )
        for uncovered in report.uncovered:
            typer.echo(uncovered.line())
        typer.echo(report.summary())
    raise typer.Exit(0 if report.ok else 1)


def _instant(text: str | None) -> datetime | None:
    """ISO 8601; a time without an offset is taken as UTC."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"not an ISO 8601 time: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _table(entries: list[AccessEntry], title: str) -> Table:
    table = Table(title=title)
    for heading in ("when (UTC)", "action", "actor", "role", "subject"):
        table.add_column(heading, no_wrap=True)
    table.add_column("fields")
    table.add_column("purpose", no_wrap=True)
    table.add_column("outcome", no_wrap=True)
    for e in entries:
        table.add_row(
            e.occurred_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            e.action,
            e.actor_id,
            e.actor_role,
            e.subject_id,
            ", ".join(e.fields),
            e.purpose or "-",
            e.outcome,
        )
    return table


async def _search(settings: AuditSettings, query: AccessQuery) -> list[AccessEntry]:
    database = Database(settings.database)
    try:
        async with database.sessionmaker() as session:
            return await search(session, query)
    finally:
        await database.dispose()


def _show(entries: list[AccessEntry], as_json: bool, title: str) -> None:
    if as_json:
        typer.echo(AccessHistory(entries=tuple(entries)).model_dump_json())
    else:
        Console().print(_table(entries, title))


@app.command("search")
def search_command(
    subject: Annotated[str | None, typer.Option(help="Pseudonymous subject id.")] = None,
    actor: Annotated[str | None, typer.Option(help="Actor id (staff, service, customer).")] = None,
    purpose: Annotated[str | None, typer.Option(help="Declared purpose of the access.")] = None,
    outcome: Annotated[str | None, typer.Option(help="success, denied or failure.")] = None,
    since: Annotated[
        str | None, typer.Option(help="ISO 8601, inclusive; UTC if no offset.")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="ISO 8601, inclusive; UTC if no offset.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=MAX_LIMIT)] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Who accessed whose data, when and why: newest first, every given filter must match."""
    query = AccessQuery(subject, actor, purpose, outcome, _instant(since), _instant(until), limit)
    settings = load_settings(AuditSettings)
    try:
        entries = asyncio.run(_search(settings, query))
    except PersistenceError as exc:
        typer.echo(f"moment-audit search: {exc}", err=True)
        raise typer.Exit(EXIT_CANNOT_VERIFY) from None
    _show(entries, as_json, f"{len(entries)} accesses, newest first")


async def _tail(
    settings: AuditSettings,
    limit: int,
    follow: bool,
    on_entries: Callable[[list[AccessEntry]], None],
) -> None:
    """The latest `limit` records, oldest first; then, following, each new record as it lands."""
    database = Database(settings.database)
    try:
        async with database.sessionmaker() as session:
            latest = await search(session, AccessQuery(limit=limit))
            last_id = await session.scalar(select(func.max(audit_records.c.id))) or 0
        on_entries(list(reversed(latest)))
        while follow:
            await asyncio.sleep(TAIL_POLL_S)
            async with database.sessionmaker() as session:
                found = await entries_after(session, int(last_id))
            if found:
                last_id = found[-1][0]
                on_entries([entry for _, entry in found])
    finally:
        await database.dispose()


@app.command()
def tail(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=MAX_LIMIT)] = 20,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new records.")
    ] = False,
    seconds: Annotated[
        float | None, typer.Option("--for", help="Stop following after this many seconds.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """The latest records, oldest first; with --follow, new ones as they land (Ctrl-C stops)."""
    settings = load_settings(AuditSettings)
    console = Console()

    def on_entries(entries: list[AccessEntry]) -> None:
        if as_json:
            for entry in entries:
                typer.echo(entry.model_dump_json())
        elif entries:
            console.print(_table(entries, time.strftime("%H:%M:%S")))

    async def run() -> None:
        await asyncio.wait_for(_tail(settings, limit, follow, on_entries), seconds)

    try:
        asyncio.run(run())
    except (TimeoutError, KeyboardInterrupt):
        pass
    except PersistenceError as exc:
        typer.echo(f"moment-audit tail: {exc}", err=True)
        raise typer.Exit(EXIT_CANNOT_VERIFY) from None


def main() -> None:
    app()
