"""One async engine and session factory per service, tuned for the dialect in use.

SQLite (local dev) needs per-connection set-up that SQLAlchemy does not do by default: WAL so
readers do not block the writer, enforced foreign keys, a busy timeout, and SQLAlchemy-emitted
BEGIN so that SAVEPOINTs and rolled-back test transactions behave as on PostgreSQL.
PostgreSQL gets a bounded pool, pre-ping (connections survive a server restart) and a connect
timeout, since asyncpg would otherwise wait a minute on an unreachable host.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

from sqlalchemy import event, text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from moment_persistence.config import DatabaseConfig, Dialect
from moment_persistence.errors import translate_errors


class Database:
    """Owns the engine; create one at service start-up and `dispose()` it at shutdown."""

    def __init__(self, config: DatabaseConfig) -> None:
        self.config = config
        self.engine: AsyncEngine = _build_engine(config)
        self.sessionmaker: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.engine, expire_on_commit=False
        )

    @property
    def dialect(self) -> Dialect:
        return self.config.dialect

    @property
    def target(self) -> str:
        """Where the database is, safe to log: no user name or password."""
        return self.config.target

    def bind(self, connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
        """A session factory whose sessions join `connection`'s transaction via SAVEPOINTs.

        Tests open one outer transaction per test and roll it back afterwards; sessions made here
        can still commit (releasing their savepoint) without making anything durable.
        """
        return async_sessionmaker(
            bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )

    async def ping(self) -> None:
        """Round-trip to the server; raises DatabaseUnavailable if it cannot be reached."""
        with translate_errors(self.target):
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.dispose()


def _build_engine(config: DatabaseConfig) -> AsyncEngine:
    url = config.sqlalchemy_url
    # Bound parameters are personal data (emails, names); keep them out of errors and echo logs.
    common: dict[str, Any] = {"echo": config.echo, "hide_parameters": True}
    if config.dialect == "sqlite":
        engine = create_async_engine(url, **common)
        _install_sqlite_hooks(engine, url, config.sqlite_busy_timeout_ms)
        return engine
    return create_async_engine(
        url,
        pool_size=config.pool_size,
        max_overflow=config.max_overflow,
        pool_timeout=config.pool_timeout_s,
        pool_pre_ping=True,
        connect_args={"timeout": config.connect_timeout_s},
        **common,
    )


def _install_sqlite_hooks(engine: AsyncEngine, url: URL, busy_timeout_ms: int) -> None:
    in_memory = url.database in (None, "", ":memory:")

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN away from the sqlite3 module, which skips it for SELECT and SAVEPOINT.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # busy_timeout first: switching to WAL itself needs the lock.
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            if not in_memory:
                cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # IMMEDIATE takes the write lock up front, so concurrent writers wait for busy_timeout
        # instead of failing when a read transaction later tries to upgrade to a write.
        connection.exec_driver_sql("BEGIN IMMEDIATE")
