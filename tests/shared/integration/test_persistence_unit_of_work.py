"""SqlUnitOfWork on both dialects: commit at the boundary only, typed errors, outbox hook."""

from __future__ import annotations

import traceback
import uuid
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from moment_persistence.config import DatabaseConfig
from moment_persistence.database import Database
from moment_persistence.errors import (
    ForeignKeyViolation,
    UniqueViolation,
    classify_integrity_error,
)
from moment_persistence.unit_of_work import SqlUnitOfWork, UnitOfWorkStateError
from tests.support.postgres import PostgresDatabases, RollbackSessions, fresh_database_url


class Base(DeclarativeBase):
    pass


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = (sa.UniqueConstraint("email", name="uq_accounts_email"),)

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(200))


metadata = Base.metadata
accounts = metadata.tables["accounts"]
grants = sa.Table(
    "grants",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account_id", sa.ForeignKey("accounts.id", name="fk_grants_account"), nullable=False),
)
outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event", sa.String(200), nullable=False),
)


class OutboxUnitOfWork(SqlUnitOfWork):
    """What the messaging layer will do: write collected events in the same transaction."""

    async def _before_commit(self) -> None:
        for event in self.pending_events:
            await self.session.execute(outbox.insert().values(event=str(event)))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
async def module_database(
    request: pytest.FixtureRequest,
    postgres_database_factory: PostgresDatabases,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Database]:
    directory = tmp_path_factory.mktemp("uow")
    url = await fresh_database_url(request.param, postgres_database_factory, directory, "uow")
    async with Database(DatabaseConfig(url=url)) as db:
        async with db.engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        yield db


@pytest.fixture
async def database(module_database: Database) -> AsyncIterator[Database]:
    # One database per dialect for the module (creating one per test costs more than the test).
    yield module_database
    async with module_database.engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            await connection.execute(table.delete())


def new_id() -> str:
    return str(uuid.uuid4())


async def count(database: Database, table: sa.Table) -> int:
    async with database.sessionmaker() as session:
        return int(await session.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


async def test_commit_makes_writes_durable(database: Database) -> None:
    async with SqlUnitOfWork(database) as uow:
        await uow.session.execute(accounts.insert().values(id=new_id(), email="a@example.org"))
        await uow.commit()
    assert await count(database, accounts) == 1


async def test_leaving_without_commit_rolls_back(database: Database) -> None:
    async with SqlUnitOfWork(database) as uow:
        await uow.session.execute(accounts.insert().values(id=new_id(), email="a@example.org"))
    assert await count(database, accounts) == 0


async def test_an_exception_rolls_back_and_propagates(database: Database) -> None:
    async def use_case() -> None:
        async with SqlUnitOfWork(database) as uow:
            await uow.session.execute(accounts.insert().values(id=new_id(), email="a@example.org"))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await use_case()
    assert await count(database, accounts) == 0


async def test_work_after_the_last_commit_is_rolled_back(database: Database) -> None:
    async with SqlUnitOfWork(database) as uow:
        await uow.session.execute(accounts.insert().values(id=new_id(), email="a@example.org"))
        await uow.commit()
        await uow.session.execute(accounts.insert().values(id=new_id(), email="b@example.org"))
    assert await count(database, accounts) == 1


async def test_duplicate_key_on_commit_is_a_named_unique_violation(database: Database) -> None:
    async with SqlUnitOfWork(database) as uow:
        await uow.session.execute(accounts.insert().values(id=new_id(), email="dup@example.org"))
        await uow.commit()
    uow = SqlUnitOfWork(database, metadata=metadata)
    async with uow:
        # ORM writes are flushed at commit, so that is where the violation surfaces.
        uow.session.add(Account(id=new_id(), email="dup@example.org"))
        with pytest.raises(UniqueViolation) as caught:
            await uow.commit()
    violation = caught.value
    assert violation.constraint == "uq_accounts_email"
    assert violation.table == "accounts"
    assert violation.columns == ("email",)
    assert "dup@example.org" not in "".join(traceback.format_exception(violation))


async def test_core_statements_raise_typed_errors_inside_errors_block(database: Database) -> None:
    async with SqlUnitOfWork(database, metadata=metadata) as uow:
        await uow.session.execute(accounts.insert().values(id=new_id(), email="c@example.org"))
        with pytest.raises(UniqueViolation, match="uq_accounts_email"), uow.errors():
            await uow.session.execute(accounts.insert().values(id=new_id(), email="c@example.org"))


async def test_missing_parent_is_a_foreign_key_violation(database: Database) -> None:
    async with SqlUnitOfWork(database) as uow:
        with pytest.raises(ForeignKeyViolation), uow.errors():
            await uow.session.execute(grants.insert().values(account_id=new_id()))
    assert await count(database, grants) == 0


async def test_classify_integrity_error_without_metadata(database: Database) -> None:
    async with database.sessionmaker() as session:
        await session.execute(accounts.insert().values(id="same", email="x@example.org"))
        with pytest.raises(sa.exc.IntegrityError) as caught:
            await session.execute(accounts.insert().values(id="same", email="y@example.org"))
    violation = classify_integrity_error(caught.value)
    assert isinstance(violation, UniqueViolation)
    assert violation.table == "accounts"
    assert violation.columns == ("id",)
    expected = "accounts_pkey" if database.dialect == "postgresql" else None
    assert violation.constraint == expected


async def test_events_reach_the_outbox_only_with_their_change(database: Database) -> None:
    async with OutboxUnitOfWork(database) as uow:
        await uow.session.execute(accounts.insert().values(id=new_id(), email="e@example.org"))
        uow.collect("account.created")
        assert uow.pending_events == ["account.created"]
        await uow.commit()
        assert uow.pending_events == []
    async with OutboxUnitOfWork(database, metadata=metadata) as uow:
        uow.session.add(Account(id=new_id(), email="e@example.org"))
        uow.collect("account.created")
        with pytest.raises(UniqueViolation):
            await uow.commit()
    assert await count(database, outbox) == 1
    assert await count(database, accounts) == 1


async def test_events_are_dropped_on_rollback(database: Database) -> None:
    uow = OutboxUnitOfWork(database)
    async with uow:
        uow.collect("never.published")
        await uow.rollback()
        assert uow.pending_events == []
        uow.collect("also.never.published")
    assert uow.pending_events == []
    assert await count(database, outbox) == 0


async def test_session_is_only_available_inside_the_block(database: Database) -> None:
    uow = SqlUnitOfWork(database)
    with pytest.raises(UnitOfWorkStateError):
        _ = uow.session
    async with uow:
        with pytest.raises(UnitOfWorkStateError):
            await uow.__aenter__()
    with pytest.raises(UnitOfWorkStateError):
        await uow.commit()


async def test_unit_of_work_reusable_sequentially(database: Database) -> None:
    uow = SqlUnitOfWork(database)
    for email in ("one@example.org", "two@example.org"):
        async with uow:
            await uow.session.execute(accounts.insert().values(id=new_id(), email=email))
            await uow.commit()
    assert await count(database, accounts) == 2


async def test_unit_of_work_accepts_a_session_factory(database: Database) -> None:
    async with SqlUnitOfWork(database.sessionmaker) as uow:
        await uow.session.execute(accounts.insert().values(id=new_id(), email="f@example.org"))
        await uow.commit()
    assert await count(database, accounts) == 1


async def test_unit_of_work_on_an_outer_transaction_commits_into_it(
    database: Database, rollback_session: RollbackSessions
) -> None:
    connection = await rollback_session.connection(database)
    async with SqlUnitOfWork(connection) as uow:
        await uow.session.execute(accounts.insert().values(id=new_id(), email="g@example.org"))
        await uow.commit()
    async with SqlUnitOfWork(connection) as uow:
        await uow.session.execute(accounts.insert().values(id=new_id(), email="h@example.org"))
    session = await rollback_session(database)
    assert await session.scalar(sa.select(sa.func.count()).select_from(accounts)) == 1
