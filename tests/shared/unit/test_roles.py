"""Role plans: exactly the listed privileges, refusing names that could escape the SQL."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Integer, MetaData, Table

from moment_persistence.roles import APPEND, RolePlan, UnknownTable, plan_statements


def _metadata() -> MetaData:
    metadata = MetaData()
    Table("records", metadata, Column("id", Integer, primary_key=True))
    Table("outbox", metadata, Column("id", Integer, primary_key=True))
    return metadata


def test_a_plan_revokes_everything_then_grants_only_what_it_lists() -> None:
    lines = plan_statements([RolePlan("svc_writer", {"records": APPEND})], _metadata())
    revoke = next(i for i, line in enumerate(lines) if line.startswith("REVOKE"))
    grants = [line for line in lines if line.startswith("GRANT") and "TABLE" in line]
    assert "outbox" in lines[revoke], "tables the plan leaves out lose every privilege"
    assert grants == ["GRANT SELECT, INSERT ON TABLE records TO svc_writer"]
    assert revoke < lines.index(grants[0])


@pytest.mark.parametrize("name", ["Writer", "x'; DROP ROLE postgres; --", "a" * 64, ""])
def test_role_names_are_plain_identifiers(name: str) -> None:
    with pytest.raises(ValueError, match="role names"):
        RolePlan(name)


def test_unknown_tables_and_privileges_are_refused() -> None:
    with pytest.raises(UnknownTable):
        RolePlan("svc", {"nope": APPEND}).statements(_metadata())
    with pytest.raises(ValueError, match="unsupported"):
        RolePlan("svc", {"records": ("TRUNCATE",)}).statements(_metadata())
