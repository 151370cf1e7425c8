"""Alembic helpers on both dialects, with a throw-away script directory written per test."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

from moment_devstack.processes import free_port
from moment_persistence.config import DatabaseConfig
from moment_persistence.database import Database
from moment_persistence.errors import DatabaseUnavailable, MigrationError
from moment_persistence.migrations import (
    current_revision,
    head_revision,
    is_at_head,
    upgrade_on_connection,
    upgrade_to_head,
)
from tests.support.postgres import PostgresDatabases, fresh_database_url, rollback_scope

ENV_PY = """
import sqlalchemy as sa
from moment_persistence.migrations import run_env

run_env(sa.MetaData())
"""

FIRST = """
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table("widgets", sa.Column("id", sa.Integer, primary_key=True))


def downgrade() -> None:
    op.drop_table("widgets")
"""

# A unique constraint added to an existing table needs batch mode ("move and copy") on SQLite.
SECOND = """
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    with op.batch_alter_table("widgets") as batch:
        batch.add_column(sa.Column("name", sa.String(50), nullable=False, server_default="w"))
        batch.create_unique_constraint("uq_widgets_name", ["name"])


def downgrade() -> None:
    with op.batch_alter_table("widgets") as batch:
        batch.drop_constraint("uq_widgets_name", type_="unique")
        batch.drop_column("name")
"""


def write_scripts(directory: Path, *revisions: str) -> Path:
    versions = directory / "versions"
    versions.mkdir(parents=True)
    (directory / "env.py").write_text(textwrap.dedent(ENV_PY))
    for number, body in enumerate(revisions, start=1):
        (versions / f"{number:04d}_step.py").write_text(textwrap.dedent(body))
    return directory


@pytest.fixture(params=["sqlite", "postgresql"])
async def url(
    request: pytest.FixtureRequest, postgres_database_factory: PostgresDatabases, tmp_path: Path
) -> str:
    return await fresh_database_url(request.param, postgres_database_factory, tmp_path, "mig")


async def test_upgrade_to_head_applies_every_revision(url: str, tmp_path: Path) -> None:
    scripts = write_scripts(tmp_path / "migrations", FIRST, SECOND)
    assert await current_revision(url, scripts) is None
    assert not await is_at_head(url, scripts)

    await upgrade_to_head(url, scripts)
    await upgrade_to_head(url, scripts)  # already at head: nothing to do

    assert head_revision(scripts) == "0002"
    assert await current_revision(url, scripts) == "0002"
    assert await is_at_head(url, scripts)
    async with Database(DatabaseConfig(url=url)) as database, database.engine.begin() as conn:
        await conn.execute(sa.text("INSERT INTO widgets (id, name) VALUES (1, 'a')"))
        with pytest.raises(sa.exc.IntegrityError):
            await conn.execute(sa.text("INSERT INTO widgets (id, name) VALUES (2, 'a')"))


async def test_upgrade_continues_from_the_current_revision(url: str, tmp_path: Path) -> None:
    await upgrade_to_head(url, write_scripts(tmp_path / "v1", FIRST))
    scripts = write_scripts(tmp_path / "v2", FIRST, SECOND)
    assert await current_revision(url, scripts) == "0001"
    await upgrade_to_head(url, scripts)
    assert await current_revision(url, scripts) == "0002"


async def test_revision_unknown_to_the_code_is_a_migration_error(url: str, tmp_path: Path) -> None:
    await upgrade_to_head(url, write_scripts(tmp_path / "new", FIRST, SECOND))
    old = write_scripts(tmp_path / "old", FIRST)
    with pytest.raises(MigrationError, match="'0002', unknown to this code"):
        await current_revision(url, old)
    with pytest.raises(MigrationError):
        await upgrade_to_head(url, old)


async def test_upgrade_on_connection_stays_inside_the_outer_transaction(
    url: str, tmp_path: Path
) -> None:
    scripts = write_scripts(tmp_path / "migrations", FIRST, SECOND)
    async with Database(DatabaseConfig(url=url)) as database:
        async with rollback_scope() as sessions:
            connection = await sessions.connection(database)
            await upgrade_on_connection(connection, scripts)
            assert await connection.scalar(sa.text("SELECT count(*) FROM widgets")) == 0
        assert await current_revision(url, scripts) is None


async def test_upgrade_against_a_closed_port_is_unavailable(tmp_path: Path) -> None:
    url = f"postgresql+asyncpg://postgres:hunter2@127.0.0.1:{free_port()}/moment_identity"
    with pytest.raises(DatabaseUnavailable) as caught:
        await upgrade_to_head(url, write_scripts(tmp_path / "migrations", FIRST))
    assert "hunter2" not in str(caught.value)
