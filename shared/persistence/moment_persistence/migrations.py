"""Alembic glue, so each service's migrations/env.py is a few lines and start-up needs no ini file.

A service's env.py is just::

    from moment_persistence.migrations import run_env
    from moment_identity.adapters.sql.tables import metadata

    run_env(metadata)

The database URL travels in `Config.attributes["sqlalchemy.url"]` rather than the ini-style main
options: those go through ConfigParser interpolation (URL-encoded passwords contain '%') and would
put the secret into a config object that gets printed. Alembic itself is synchronous, so the
async helpers here run it in a worker thread, where env.py drives an async engine with its own
event loop; `upgrade_on_connection` instead reuses a caller's connection (tests, in-memory SQLite).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy import MetaData, NullPool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from moment_persistence.config import parse_async_url, safe_target
from moment_persistence.errors import MigrationError, translate_errors

URL_ATTRIBUTE = "sqlalchemy.url"
CONNECTION_ATTRIBUTE = "connection"


def alembic_config(script_location: str | Path, url: str | None = None) -> Config:
    """An Alembic Config built in code: script location plus, optionally, the database URL."""
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("path_separator", "os")
    if url is not None:
        config.attributes[URL_ATTRIBUTE] = url
    return config


def run_env(target_metadata: MetaData) -> None:
    """Body of a service's migrations/env.py: run migrations offline, on a given connection,
    or online with an async engine built from the configured URL."""
    config = context.config
    connection = config.attributes.get(CONNECTION_ATTRIBUTE)
    if isinstance(connection, Connection):
        _migrate(connection, target_metadata)
        return
    url = config.attributes.get(URL_ATTRIBUTE) or config.get_main_option(URL_ATTRIBUTE)
    if not url:
        raise MigrationError(
            f"no database url for migrations: set Config.attributes[{URL_ATTRIBUTE!r}]"
        )
    if context.is_offline_mode():
        _migrate_offline(url, target_metadata)
        return
    asyncio.run(_migrate_online(url, target_metadata))


def _migrate(connection: Connection, target_metadata: MetaData) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _migrate_offline(url: str, target_metadata: MetaData) -> None:
    context.configure(
        url=url,
        target_metadata=target_metadata,
        render_as_batch=parse_async_url(url).get_backend_name() == "sqlite",
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


async def _migrate_online(url: str, target_metadata: MetaData) -> None:
    # NullPool: this engine lives for one run on a throwaway event loop.
    engine = create_async_engine(parse_async_url(url), poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_migrate, target_metadata)
    finally:
        await engine.dispose()


async def upgrade_to_head(url: str, script_location: str | Path) -> None:
    """Apply every pending migration; raises DatabaseUnavailable or MigrationError."""
    config = alembic_config(script_location, url)
    with translate_errors(safe_target(parse_async_url(url))), _migration_errors():
        await asyncio.to_thread(command.upgrade, config, "head")


async def upgrade_on_connection(connection: AsyncConnection, script_location: str | Path) -> None:
    """Apply every pending migration on `connection`, inside its current transaction if any."""
    config = alembic_config(script_location)

    def upgrade(sync_connection: Connection) -> None:
        config.attributes[CONNECTION_ATTRIBUTE] = sync_connection
        command.upgrade(config, "head")

    with _migration_errors():
        await connection.run_sync(upgrade)


def head_revision(script_location: str | Path) -> str | None:
    """The newest revision in the script directory (None if it has no revisions)."""
    with _migration_errors():
        return ScriptDirectory.from_config(alembic_config(script_location)).get_current_head()


async def current_revision(url: str, script_location: str | Path) -> str | None:
    """The revision the database is at (None if never migrated).

    Raises MigrationError if that revision is unknown to `script_location`, which means the
    database was migrated by newer code than is running.
    """
    parsed = parse_async_url(url)
    engine = create_async_engine(parsed, poolclass=NullPool)
    try:
        with translate_errors(safe_target(parsed)):
            async with engine.connect() as connection:
                revision = await connection.run_sync(_read_revision)
    finally:
        await engine.dispose()
    if revision is not None:
        script = ScriptDirectory.from_config(alembic_config(script_location))
        with _migration_errors(f"database is at revision {revision!r}, unknown to this code"):
            script.get_revision(revision)
    return revision


async def is_at_head(url: str, script_location: str | Path) -> bool:
    """True when no migration is pending; for readiness checks when migrate_on_start is off."""
    return await current_revision(url, script_location) == head_revision(script_location)


def _read_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


@contextmanager
def _migration_errors(message: str | None = None) -> Iterator[None]:
    """Turn Alembic's own errors into MigrationError, optionally with a clearer message."""
    try:
        yield
    except (CommandError, RevisionError) as exc:
        raise MigrationError(message or str(exc)) from exc
