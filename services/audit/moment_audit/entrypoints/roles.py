"""`moment-audit db-roles`: print, or apply, the audit store's least-privilege roles."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from sqlalchemy.exc import DBAPIError

from moment_audit.adapters.db_roles import RolesNeedPostgres, apply_roles, role_sql
from moment_audit.adapters.orm import metadata
from moment_audit.config import AuditSettings
from moment_persistence.database import Database
from moment_persistence.errors import PersistenceError
from moment_settings.loader import load_settings

EXIT_CANNOT_APPLY = 2


async def _apply(settings: AuditSettings) -> None:
    database = Database(settings.database)
    try:
        await apply_roles(database.engine, metadata)
    finally:
        await database.dispose()


def db_roles(
    apply: Annotated[
        bool,
        typer.Option("--apply", help="Run the SQL as the configured (owner) database user."),
    ] = False,
) -> None:
    """The writer, retention and reader roles (PostgreSQL). Re-apply after every migration."""
    if not apply:
        typer.echo(";\n".join(role_sql(metadata)) + ";")
        return
    settings = load_settings(AuditSettings)
    try:
        asyncio.run(_apply(settings))
    except (RolesNeedPostgres, PersistenceError) as exc:
        typer.echo(f"moment-audit db-roles: {exc}", err=True)
        raise typer.Exit(EXIT_CANNOT_APPLY) from None
    except DBAPIError as exc:
        # Typically: not the tables' owner. The driver's message names no data.
        typer.echo(f"moment-audit db-roles: {exc.orig}", err=True)
        raise typer.Exit(EXIT_CANNOT_APPLY) from None
    typer.echo("roles moment_audit_writer, moment_audit_retention, moment_audit_reader granted")
