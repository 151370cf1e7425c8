"""SqlRevocationStore on real PostgreSQL and SQLite: rules merge in the database, never relax,
and every instance (every engine on the database) sees them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import MetaData

from moment_auth.revocation import RevocationRule
from moment_persistence.config import DatabaseConfig
from moment_persistence.database import Database
from moment_persistence.unit_of_work import SqlUnitOfWork
from moment_runtime.revocations import SqlRevocationStore, define_revocations_table
from tests.support.postgres import PostgresDatabases, fresh_database_url

metadata = MetaData()
table = define_revocations_table(metadata)


@pytest.fixture(params=["sqlite", "postgresql"])
async def url(
    request: pytest.FixtureRequest, postgres_database_factory: PostgresDatabases, tmp_path: Path
) -> str:
    url = await fresh_database_url(request.param, postgres_database_factory, tmp_path, "rev")
    async with Database(DatabaseConfig(url=url)) as database, database.engine.begin() as c:
        await c.run_sync(metadata.create_all)
    return url


def store_on(database: Database) -> SqlRevocationStore:
    return SqlRevocationStore(lambda: SqlUnitOfWork(database, metadata=metadata), table)


async def test_rules_merge_to_the_strictest_whatever_the_order(url: str) -> None:
    async with Database(DatabaseConfig(url=url)) as database:
        store = store_on(database)
        assert await store.rule("p-1") is None
        await store.record("p-1", RevocationRule(min_session_version=4))
        # A replayed, older event and a forged "relaxing" one change nothing.
        await store.record("p-1", RevocationRule(min_session_version=1))
        await store.record("p-1", RevocationRule(issued_before=1_800_000_000))
        await store.record("p-1", RevocationRule(issued_before=5))
        assert await store.rule("p-1") == RevocationRule(4, 1_800_000_000, False)
        await store.record("p-1", RevocationRule(permanent=True))
        await store.record("p-1", RevocationRule(min_session_version=2))
        assert await store.rule("p-1") == RevocationRule(4, 1_800_000_000, True)
        assert await store.rule("p-2") is None


async def test_another_instance_sees_the_rule_and_racing_writers_keep_the_maximum(
    url: str,
) -> None:
    async with (
        Database(DatabaseConfig(url=url)) as first,
        Database(DatabaseConfig(url=url)) as second,
    ):
        writers = [store_on(first if v % 2 else second) for v in range(1, 21)]
        await asyncio.gather(
            *(
                w.record("p-race", RevocationRule(min_session_version=v))
                for v, w in enumerate(writers, 1)
            )
        )
        assert await store_on(first).rule("p-race") == RevocationRule(20)
        assert await store_on(second).rule("p-race") == RevocationRule(20)
