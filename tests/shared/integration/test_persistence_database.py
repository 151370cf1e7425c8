"""Database on real PostgreSQL and SQLite files: per-dialect set-up, ping, and unavailability."""

from __future__ import annotations

import traceback
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from moment_devstack.processes import free_port
from moment_persistence.config import DatabaseConfig
from moment_persistence.database import Database
from moment_persistence.errors import DatabaseUnavailable
from moment_persistence.unit_of_work import SqlUnitOfWork
from tests.support.postgres import PostgresDatabases, fresh_database_url

SECRET = "hunter2-do-not-leak"


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(
    request: pytest.FixtureRequest, postgres_database_factory: PostgresDatabases, tmp_path: Path
) -> AsyncIterator[Database]:
    url = await fresh_database_url(request.param, postgres_database_factory, tmp_path)
    async with Database(DatabaseConfig(url=url)) as db:
        yield db


def _full_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


async def test_ping_reports_the_dialect(database: Database) -> None:
    await database.ping()
    assert database.dialect in {"sqlite", "postgresql"}
    assert database.target.startswith(database.dialect)


async def test_sqlite_connections_use_wal_foreign_keys_and_busy_timeout(tmp_path: Path) -> None:
    config = DatabaseConfig(
        url=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", sqlite_busy_timeout_ms=1234
    )
    async with Database(config) as database, database.engine.connect() as connection:
        assert await connection.scalar(text("PRAGMA journal_mode")) == "wal"
        assert await connection.scalar(text("PRAGMA foreign_keys")) == 1
        assert await connection.scalar(text("PRAGMA busy_timeout")) == 1234


async def test_postgres_engine_uses_the_configured_pool(
    postgres_database_factory: PostgresDatabases,
) -> None:
    url = await postgres_database_factory.create("pool")
    async with Database(DatabaseConfig(url=url, pool_size=3)) as database:
        assert database.engine.pool.size() == 3  # type: ignore[attr-defined]
        async with database.sessionmaker() as session:
            assert await session.scalar(text("SELECT current_database()")) == url.rsplit("/", 1)[1]


async def test_closed_port_raises_unavailable_without_the_password() -> None:
    url = f"postgresql+asyncpg://postgres:{SECRET}@127.0.0.1:{free_port()}/moment_identity"
    async with Database(DatabaseConfig(url=url)) as database:
        with pytest.raises(DatabaseUnavailable) as caught:
            await database.ping()
    assert "127.0.0.1" in str(caught.value)
    assert SECRET not in _full_text(caught.value)


async def test_unit_of_work_on_closed_port_fails_on_enter() -> None:
    url = f"postgresql+asyncpg://postgres:{SECRET}@127.0.0.1:{free_port()}/moment_identity"
    async with Database(DatabaseConfig(url=url)) as database:
        with pytest.raises(DatabaseUnavailable) as caught:
            async with SqlUnitOfWork(database):
                pytest.fail("the block must not run")
    assert SECRET not in _full_text(caught.value)


async def test_missing_postgres_database_is_unavailable(postgres_admin_url: str) -> None:
    url = postgres_admin_url.replace("postgresql://", "postgresql+asyncpg://").rsplit("/", 1)[0]
    async with Database(DatabaseConfig(url=f"{url}/moment_does_not_exist")) as database:
        with pytest.raises(DatabaseUnavailable, match="3D000"):
            await database.ping()


async def test_sqlite_in_missing_directory_is_unavailable(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'x.db'}"
    async with Database(DatabaseConfig(url=url)) as database:
        with pytest.raises(DatabaseUnavailable, match="unable to open database file"):
            await database.ping()


async def test_in_memory_sqlite_shares_one_database() -> None:
    async with Database(DatabaseConfig(url="sqlite+aiosqlite://")) as database:
        async with database.engine.begin() as connection:
            await connection.execute(text("CREATE TABLE t (x INTEGER)"))
            await connection.execute(text("INSERT INTO t VALUES (1)"))
        async with database.sessionmaker() as session:
            assert await session.scalar(text("SELECT count(*) FROM t")) == 1
