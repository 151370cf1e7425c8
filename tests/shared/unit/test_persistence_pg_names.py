"""Database names for CREATE/DROP DATABASE are validated, since identifiers cannot be bound."""

from __future__ import annotations

import pytest

from moment_devstack.postgres import InvalidDatabaseName, database_url, validate_database_name


@pytest.mark.parametrize("name", ["moment_identity", "_x", "a" * 63])
def test_plain_names_are_accepted(name: str) -> None:
    assert validate_database_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "Moment", "a-b", 'x"; DROP DATABASE postgres; --', "1abc", "a" * 64, "ü"]
)
def test_anything_else_is_rejected(name: str) -> None:
    with pytest.raises(InvalidDatabaseName):
        validate_database_name(name)


def test_database_url_switches_database_and_driver() -> None:
    url = database_url("postgresql://postgres:pw@127.0.0.1:5432/postgres", "moment_consent")
    assert url == "postgresql+asyncpg://postgres:pw@127.0.0.1:5432/moment_consent"
