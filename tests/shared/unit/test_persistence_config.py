"""DatabaseConfig: only async drivers, and the URL password never shows up in errors or targets."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from moment_persistence.config import DatabaseConfig


@pytest.mark.parametrize(
    ("url", "dialect"),
    [
        ("sqlite+aiosqlite:///var/identity.db", "sqlite"),
        ("sqlite+aiosqlite://", "sqlite"),
        ("postgresql+asyncpg://postgres@127.0.0.1:5432/moment_identity", "postgresql"),
    ],
)
def test_async_urls_are_accepted(url: str, dialect: str) -> None:
    config = DatabaseConfig(url=url)
    assert config.dialect == dialect
    assert config.migrate_on_start is True
    assert (config.pool_size, config.max_overflow, config.pool_timeout_s) == (10, 10, 10)
    assert config.sqlite_busy_timeout_ms == 5000


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("postgresql://u:s3cr3t@127.0.0.1/db", "postgresql+asyncpg://"),
        ("postgresql+psycopg2://u:s3cr3t@127.0.0.1/db", "postgresql+asyncpg://"),
        ("sqlite:///s3cr3t.db", "sqlite+aiosqlite://"),
        ("mysql+aiomysql://u:s3cr3t@127.0.0.1/db", "not supported"),
        ("s3cr3t not a url", "not a valid SQLAlchemy URL"),
    ],
)
def test_sync_or_unknown_drivers_are_rejected_without_echoing_the_url(url: str, hint: str) -> None:
    with pytest.raises(ValidationError) as caught:
        DatabaseConfig(url=url)
    assert hint in str(caught.value)
    assert "s3cr3t" not in str(caught.value)


def test_target_and_repr_hide_credentials() -> None:
    config = DatabaseConfig(url="postgresql+asyncpg://svc:s3cr3t@db.internal:6432/moment_consent")
    assert config.target == "postgresql://db.internal:6432/moment_consent"
    assert "s3cr3t" not in repr(config)
    assert "svc" not in config.target


def test_sqlite_target_names_the_file() -> None:
    assert DatabaseConfig(url="sqlite+aiosqlite:///x/y.db").target == "sqlite:///x/y.db"
    assert DatabaseConfig(url="sqlite+aiosqlite://").target == "sqlite:///:memory:"


def test_unknown_settings_are_rejected() -> None:
    with pytest.raises(ValidationError, match="pool_sise"):
        DatabaseConfig(url="sqlite+aiosqlite://", pool_sise=3)  # type: ignore[call-arg]
