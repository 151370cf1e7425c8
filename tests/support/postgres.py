"""Real PostgreSQL for tests: a checked server, throw-away databases, and rolled-back sessions.

The server is not started here; it must already run (see MOMENT_TEST_POSTGRES_URL). Each
database a test asks for gets a unique name, so concurrent test sessions on one server never
collide, and every database created in a session is dropped when it ends.

`rollback_session` is the fast path for tests that only need isolation, not a fresh schema: all
work happens inside one outer transaction per Database that is rolled back after the test.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, AsyncTransaction

from moment_devstack.postgres import (
    DEFAULT_ADMIN_URL,
    TEST_URL_VARIABLE,
    PostgresUnavailable,
    check_postgres,
    create_database,
    database_url,
    drop_database,
    validate_database_name,
)
from moment_persistence.config import Dialect
from moment_persistence.database import Database


class PostgresDatabases:
    """Creates uniquely named databases on the test server and drops them all at the end."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self._created: list[str] = []

    async def create(self, prefix: str = "test") -> str:
        """A fresh, empty database; returns its `postgresql+asyncpg://` URL."""
        name = validate_database_name(f"moment_test_{prefix}_{uuid.uuid4().hex[:10]}")
        await create_database(self.admin_url, name)
        self._created.append(name)
        return database_url(self.admin_url, name)

    async def drop_all(self) -> None:
        # A few at a time: sequential drops add up at session end, unbounded ones crowd the server.
        limit = asyncio.Semaphore(6)

        async def drop(name: str) -> None:
            async with limit:
                await drop_database(self.admin_url, name)

        names, self._created = self._created, []
        await asyncio.gather(*(drop(name) for name in names))


async def fresh_database_url(
    dialect: Dialect, databases: PostgresDatabases, directory: Path, prefix: str = "test"
) -> str:
    """An empty database of either dialect: a new PostgreSQL database or a new SQLite file."""
    if dialect == "postgresql":
        return await databases.create(prefix)
    return f"sqlite+aiosqlite:///{directory / f'{prefix}-{uuid.uuid4().hex[:10]}.db'}"


class RollbackSessions:
    """Hands out sessions and connections inside per-Database outer transactions.

    Sessions join the outer transaction through SAVEPOINTs, so code under test may commit;
    pass `await rollback_session.connection(db)` to SqlUnitOfWork to share the same transaction.
    """

    def __init__(self, stack: AsyncExitStack) -> None:
        self._stack = stack
        self._connections: dict[int, AsyncConnection] = {}

    async def connection(self, database: Database) -> AsyncConnection:
        key = id(database)
        if key not in self._connections:
            connection = await self._stack.enter_async_context(database.engine.connect())
            transaction = await connection.begin()
            self._stack.push_async_callback(_rollback, transaction)
            self._connections[key] = connection
        return self._connections[key]

    async def __call__(self, database: Database) -> AsyncSession:
        session = database.bind(await self.connection(database))()
        self._stack.push_async_callback(session.close)
        return session


async def _rollback(transaction: AsyncTransaction) -> None:
    if transaction.is_active:
        await transaction.rollback()


@pytest.fixture(scope="session")
async def postgres_admin_url() -> str:
    url = os.environ.get(TEST_URL_VARIABLE, DEFAULT_ADMIN_URL)
    try:
        await check_postgres(url)
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    return url


@pytest.fixture(scope="session")
async def postgres_database_factory(postgres_admin_url: str) -> AsyncIterator[PostgresDatabases]:
    databases = PostgresDatabases(postgres_admin_url)
    yield databases
    await databases.drop_all()


@asynccontextmanager
async def rollback_scope() -> AsyncIterator[RollbackSessions]:
    """RollbackSessions whose transactions end with the block (the fixture ends them per test)."""
    async with AsyncExitStack() as stack:
        yield RollbackSessions(stack)


@pytest.fixture
async def rollback_session() -> AsyncIterator[RollbackSessions]:
    """`session = await rollback_session(database)`; everything is rolled back after the test."""
    async with rollback_scope() as sessions:
        yield sessions
