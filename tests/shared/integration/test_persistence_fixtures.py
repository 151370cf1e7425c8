"""The PostgreSQL test fixtures themselves: fresh databases, and rollbacks that leave nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from moment_devstack.postgres import PostgresUnavailable, check_postgres, drop_database
from moment_devstack.processes import free_port
from moment_persistence.config import DatabaseConfig
from moment_persistence.database import Database
from moment_persistence.unit_of_work import SqlUnitOfWork
from tests.support.postgres import (
    PostgresDatabases,
    RollbackSessions,
    fresh_database_url,
    rollback_scope,
)

metadata = sa.MetaData()
notes = sa.Table("notes", metadata, sa.Column("id", sa.Integer, primary_key=True))


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(
    request: pytest.FixtureRequest, postgres_database_factory: PostgresDatabases, tmp_path: Path
) -> AsyncIterator[Database]:
    url = await fresh_database_url(request.param, postgres_database_factory, tmp_path, "fix")
    async with Database(DatabaseConfig(url=url)) as db:
        async with db.engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        yield db


async def count_notes(database: Database) -> int:
    async with database.engine.connect() as connection:
        return int(await connection.scalar(sa.select(sa.func.count()).select_from(notes)) or 0)


async def test_rollback_scope_leaves_no_rows_behind(database: Database) -> None:
    async with rollback_scope() as sessions:
        session = await sessions(database)
        await session.execute(notes.insert().values(id=1))
        await session.commit()  # releases a savepoint only
        async with SqlUnitOfWork(await sessions.connection(database)) as uow:
            await uow.session.execute(notes.insert().values(id=2))
            await uow.commit()
        second = await sessions(database)
        assert await second.scalar(sa.select(sa.func.count()).select_from(notes)) == 2
    assert await count_notes(database) == 0


async def test_rollback_session_fixture_gives_a_working_session(
    database: Database, rollback_session: RollbackSessions
) -> None:
    session = await rollback_session(database)
    await session.execute(notes.insert().values(id=7))
    await session.commit()
    assert await session.scalar(sa.select(notes.c.id)) == 7


async def test_factory_creates_distinct_empty_databases(
    postgres_database_factory: PostgresDatabases,
) -> None:
    first = await postgres_database_factory.create("distinct")
    second = await postgres_database_factory.create("distinct")
    assert first != second
    assert first.startswith("postgresql+asyncpg://")
    assert "/moment_test_distinct_" in first
    async with Database(DatabaseConfig(url=first)) as database:
        await database.ping()


async def test_dropped_database_is_gone(postgres_database_factory: PostgresDatabases) -> None:
    url = await postgres_database_factory.create("dropped")
    name = url.rsplit("/", 1)[1]
    async with Database(DatabaseConfig(url=url)) as database:
        await database.ping()  # holds a pooled connection, which the drop must terminate
        await drop_database(postgres_database_factory.admin_url, name)
    admin = postgres_database_factory.admin_url.rsplit("/", 1)[0]
    with pytest.raises(PostgresUnavailable, match="3D000"):
        await check_postgres(f"{admin}/{name}")


async def test_check_postgres_explains_what_to_do_when_unreachable() -> None:
    with pytest.raises(PostgresUnavailable, match="start it, or set MOMENT_TEST_POSTGRES_URL"):
        await check_postgres(f"postgresql://postgres:pw@127.0.0.1:{free_port()}/postgres")
