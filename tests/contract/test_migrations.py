"""Each service's Alembic migrations build exactly the schema its code declares, on both."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from pydantic import SecretStr
from sqlalchemy import MetaData

from moment_audit.adapters.orm import metadata as audit_metadata
from moment_audit.bootstrap import MIGRATIONS as AUDIT_MIGRATIONS
from moment_consent.adapters.orm import metadata as consent_metadata
from moment_consent.bootstrap import MIGRATIONS as CONSENT_MIGRATIONS
from moment_identity.adapters.orm import metadata as identity_metadata
from moment_identity.bootstrap import MIGRATIONS as IDENTITY_MIGRATIONS
from moment_persistence.config import DatabaseConfig
from moment_persistence.database import Database
from moment_persistence.migrations import current_revision, head_revision, upgrade_to_head
from tests.support.postgres import PostgresDatabases, fresh_database_url

SERVICES = {
    "identity": (identity_metadata, IDENTITY_MIGRATIONS),
    "consent": (consent_metadata, CONSENT_MIGRATIONS),
    "audit": (audit_metadata, AUDIT_MIGRATIONS),
}


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_migrations_reach_head_and_match_the_models(
    service: str,
    dialect: str,
    postgres_database_factory: PostgresDatabases,
    tmp_path: Path,
) -> None:
    metadata, migrations = SERVICES[service]
    url = await fresh_database_url(dialect, postgres_database_factory, tmp_path, service)  # type: ignore[arg-type]
    await upgrade_to_head(url, migrations)
    assert await current_revision(url, migrations) == head_revision(migrations)
    database = Database(DatabaseConfig(url=SecretStr(url)))
    try:
        async with database.engine.connect() as connection:
            diff = await connection.run_sync(_diff, metadata)
    finally:
        await database.dispose()
    assert diff == [], f"{service}: models and migrations disagree; add a revision"


def _diff(connection: object, metadata: MetaData) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})  # type: ignore[arg-type]
    return list(compare_metadata(context, metadata))
