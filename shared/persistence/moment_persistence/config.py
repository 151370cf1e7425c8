"""Database settings shared by every service, validated before any connection is attempted.

The URL is a SecretStr because PostgreSQL URLs may carry a password, and validation errors hide
their input for the same reason. Only async drivers are accepted: a sync driver would only fail
later, deep inside the first request, with a much less helpful error.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

Dialect = Literal["sqlite", "postgresql"]

ASYNC_DRIVERS: dict[str, str] = {"sqlite": "aiosqlite", "postgresql": "asyncpg"}


def parse_async_url(raw: str) -> URL:
    """Parse a SQLAlchemy URL and insist on a supported async driver; errors omit the URL."""
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError):
        raise ValueError("database url is not a valid SQLAlchemy URL") from None
    # Read from the name itself: asking SQLAlchemy for the driver would import a dialect, and an
    # unknown scheme such as 'postgres://' would raise NoSuchModuleError instead of a clear message.
    backend, _, driver = url.drivername.partition("+")
    expected = ASYNC_DRIVERS.get(backend)
    if expected is None:
        raise ValueError(
            f"database backend {backend!r} is not supported: use 'sqlite+aiosqlite://' "
            "or 'postgresql+asyncpg://'"
        )
    if driver != expected:
        raise ValueError(
            f"database url must use the async driver '{backend}+{expected}://' "
            f"(got driver {driver!r}); sync drivers cannot run on the event loop"
        )
    return url


def safe_target(url: URL) -> str:
    """Where a URL points, for messages: dialect, host, port and database, never credentials."""
    if url.get_backend_name() == "sqlite":
        return f"sqlite:///{url.database or ':memory:'}"
    host = url.host or "localhost"
    port = f":{url.port}" if url.port else ""
    return f"postgresql://{host}{port}/{url.database or ''}"


class DatabaseConfig(BaseModel):
    """How a service reaches its database; PostgreSQL in production, SQLite for local dev."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    url: SecretStr
    echo: bool = False
    pool_size: int = Field(default=10, ge=1)
    max_overflow: int = Field(default=10, ge=0)
    pool_timeout_s: float = Field(default=10, gt=0)
    connect_timeout_s: float = Field(default=5, gt=0)
    # Dev runs Alembic at start-up; production runs it as a separate deployment step.
    migrate_on_start: bool = True
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)

    @field_validator("url")
    @classmethod
    def _require_async_driver(cls, value: SecretStr) -> SecretStr:
        parse_async_url(value.get_secret_value())
        return value

    @property
    def sqlalchemy_url(self) -> URL:
        return make_url(self.url.get_secret_value())

    @property
    def dialect(self) -> Dialect:
        return "sqlite" if self.sqlalchemy_url.get_backend_name() == "sqlite" else "postgresql"

    @property
    def target(self) -> str:
        return safe_target(self.sqlalchemy_url)
