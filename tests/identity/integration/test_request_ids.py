"""Used read ids, on both dialects identity runs on: each id is claimed once, then pruned."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

import moment_identity
from moment_identity.adapters.orm import used_request_ids
from moment_identity.adapters.request_ids import SqlRequestIds
from moment_persistence.config import DatabaseConfig
from moment_persistence.database import Database
from moment_persistence.migrations import upgrade_to_head
from tests.support.postgres import PostgresDatabases, fresh_database_url

MIGRATIONS = Path(moment_identity.__file__).parent / "migrations"


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(
    request: pytest.FixtureRequest, postgres_database_factory: PostgresDatabases, tmp_path: Path
) -> AsyncIterator[Database]:
    url = await fresh_database_url(request.param, postgres_database_factory, tmp_path, "ids")
    await upgrade_to_head(url, MIGRATIONS)  # the table as the migration makes it
    async with Database(DatabaseConfig(url=url)) as db:
        yield db


async def test_an_id_is_claimed_once_per_source_and_pruned_after_its_window(
    database: Database,
) -> None:
    now = datetime.now(UTC)
    async with database.sessionmaker() as session, session.begin():
        ids = SqlRequestIds(session)
        assert await ids.claim("/storefront", "r-1", now - timedelta(hours=1))
        assert not await ids.claim("/storefront", "r-1", now)
        assert await ids.claim("/elsewhere", "r-1", now)
        assert await ids.claim("/storefront", "r-2", now)
    async with database.sessionmaker() as session, session.begin():
        await SqlRequestIds(session).prune(now - timedelta(minutes=10))
        count = select(func.count()).select_from(used_request_ids)
        assert (await session.execute(count)).scalar_one() == 2
        # Pruned after the window: by then a box bound to r-1 is refused as stale anyway.
        assert await SqlRequestIds(session).claim("/storefront", "r-1", now)
