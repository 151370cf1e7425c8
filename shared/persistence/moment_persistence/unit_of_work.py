"""The transaction boundary of one use case: everything it writes commits together, or nothing.

Handlers never commit on their own; they call `commit()` once, at the end of the use case, and
leaving the block without it rolls everything back. Domain events raised along the way are
collected here so the messaging layer can write them to an outbox table in the same transaction
(override `_before_commit`): an event is then published if and only if its change committed.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from types import TracebackType
from typing import Self

from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from moment_persistence.database import Database
from moment_persistence.errors import PersistenceError, translate_errors

SessionSource = Database | async_sessionmaker[AsyncSession] | AsyncConnection


class UnitOfWorkStateError(PersistenceError):
    """The unit of work was used outside its `async with` block, or entered twice."""


class SqlUnitOfWork:
    """Async context manager around one AsyncSession.

    `source` is normally the service's Database. Tests may pass an AsyncConnection that is inside
    an outer transaction: the session then joins it through a SAVEPOINT, so `commit()` behaves
    as usual while the test's final rollback still discards everything.
    """

    def __init__(self, source: SessionSource, *, metadata: MetaData | None = None) -> None:
        self._factory, self._target = _session_factory(source)
        # Lets SQLite unique violations report the constraint name, as PostgreSQL does.
        self._metadata = metadata
        self._session: AsyncSession | None = None
        self._events: list[object] = []

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            raise UnitOfWorkStateError("the unit of work is not open: use 'async with uow:'")
        return self._session

    @property
    def pending_events(self) -> list[object]:
        """Events collected since the last commit, in the order they were raised."""
        return self._events

    def collect(self, event: object) -> None:
        self._events.append(event)

    async def __aenter__(self) -> Self:
        if self._session is not None:
            raise UnitOfWorkStateError("the unit of work is already open")
        session = self._factory()
        try:
            # Connect now, so an unreachable database fails here as DatabaseUnavailable rather
            # than as a raw driver error from the first query inside a repository.
            with translate_errors(self._target):
                await session.connection()
        except BaseException:
            await session.close()
            raise
        self._session = session
        self._events = []
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session, self._session = self.session, None
        try:
            with translate_errors(self._target):
                await session.rollback()
        finally:
            self._events = []
            await session.close()

    async def commit(self) -> None:
        """Write the outbox (via `_before_commit`), then commit; errors become PersistenceError."""
        session = self.session
        with translate_errors(self._target, self._metadata):
            await self._before_commit()
            await session.commit()
        self._events = []

    async def rollback(self) -> None:
        """Discard everything since the last commit, including collected events."""
        with translate_errors(self._target):
            await self.session.rollback()
        self._events = []

    async def flush(self) -> None:
        """Send pending writes now, so constraint violations surface before commit."""
        with translate_errors(self._target, self._metadata):
            await self.session.flush()

    def errors(self) -> AbstractContextManager[None]:
        """For repositories: `with uow.errors(): await uow.session.execute(...)` maps driver
        errors (lost connection, constraint violations) to PersistenceError subclasses."""
        return translate_errors(self._target, self._metadata)

    async def _before_commit(self) -> None:
        """Hook run inside the transaction just before COMMIT; the outbox mixin overrides it."""


def _session_factory(source: SessionSource) -> tuple[async_sessionmaker[AsyncSession], str]:
    if isinstance(source, Database):
        return source.sessionmaker, source.target
    if isinstance(source, AsyncConnection):
        factory = async_sessionmaker(
            bind=source, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
        return factory, "the test connection"
    return source, "the configured database"
