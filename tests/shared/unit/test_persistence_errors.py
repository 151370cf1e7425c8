"""Error mapping: what counts as "unavailable", and integrity errors from real in-memory SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

from moment_persistence.config import DatabaseConfig
from moment_persistence.database import Database
from moment_persistence.errors import (
    DatabaseUnavailable,
    ForeignKeyViolation,
    IntegrityViolation,
    UniqueViolation,
    classify_integrity_error,
    is_unavailable,
    translate_errors,
)

metadata = sa.MetaData()
parents = sa.Table(
    "parents",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("tenant", sa.String, nullable=False),
    sa.Column("code", sa.String, nullable=False),
    sa.Column("label", sa.String, nullable=False),
    sa.CheckConstraint("length(label) > 0", name="ck_parents_label"),
    sa.UniqueConstraint("tenant", "code", name="uq_parents_tenant_code"),
    sa.Index("ix_parents_label_unique", "label", unique=True),
)
children = sa.Table(
    "children",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("parent_id", sa.ForeignKey("parents.id"), nullable=False),
)


@pytest.fixture
async def database() -> AsyncIterator[Database]:
    async with Database(DatabaseConfig(url="sqlite+aiosqlite://")) as db:
        async with db.engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
            await connection.execute(parents.insert().values(id=1, tenant="t", code="c", label="l"))
        yield db


async def integrity_error(database: Database, statement: sa.Executable) -> sa.exc.IntegrityError:
    async with database.engine.connect() as connection:
        with pytest.raises(sa.exc.IntegrityError) as caught:
            await connection.execute(statement)
    return caught.value


async def test_composite_unique_constraint_is_named_from_metadata(database: Database) -> None:
    exc = await integrity_error(database, parents.insert().values(tenant="t", code="c", label="x"))
    violation = classify_integrity_error(exc, metadata)
    assert isinstance(violation, UniqueViolation)
    assert violation.constraint == "uq_parents_tenant_code"
    assert violation.columns == ("tenant", "code")


async def test_unique_index_and_primary_key_are_named_from_metadata(database: Database) -> None:
    exc = await integrity_error(database, parents.insert().values(tenant="u", code="c", label="l"))
    assert classify_integrity_error(exc, metadata).constraint == "ix_parents_label_unique"
    exc = await integrity_error(
        database, parents.insert().values(id=1, tenant="u", code="d", label="m")
    )
    # SQLAlchemy leaves primary keys unnamed, so SQLite cannot name them.
    assert classify_integrity_error(exc, metadata).table == "parents"


async def test_foreign_key_and_other_violations(database: Database) -> None:
    exc = await integrity_error(database, children.insert().values(parent_id=99))
    assert isinstance(classify_integrity_error(exc), ForeignKeyViolation)
    exc = await integrity_error(database, parents.insert().values(tenant="v", code="e", label=""))
    violation = classify_integrity_error(exc)
    assert type(violation) is IntegrityViolation


def test_unavailability_is_recognised() -> None:
    assert is_unavailable(ConnectionRefusedError(111, "Connection refused"))
    assert is_unavailable(sa.exc.TimeoutError())
    assert not is_unavailable(ValueError("not a database problem"))


def test_translate_errors_maps_unavailability_and_passes_bugs_through() -> None:
    with pytest.raises(DatabaseUnavailable, match="Connection refused"), translate_errors("db"):
        raise ConnectionRefusedError(111, "Connection refused")
    with pytest.raises(KeyError), translate_errors("db"):
        raise KeyError("bug")
