"""Check a local PostgreSQL server and create or drop per-service (or per-test) databases.

PostgreSQL is not embedded like Tansu and OpenBao: it is expected to be running already. These
helpers fail early with an actionable message when it is not, and give tests throw-away
databases. They speak to the server with asyncpg directly, because CREATE/DROP DATABASE cannot
run inside the transaction SQLAlchemy would open. Identifiers cannot be bound as parameters, so
database names are checked against a strict pattern before they reach any SQL text.
"""

from __future__ import annotations

import re

import asyncpg
from sqlalchemy.engine import URL, make_url

from moment_devstack.processes import InfrastructureError

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TEST_URL_VARIABLE = "MOMENT_TEST_POSTGRES_URL"
CONNECT_TIMEOUT_S = 5.0

# Lower-case letters, digits and underscores, at most 63 bytes (PostgreSQL's identifier limit).
_DATABASE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class PostgresUnavailable(InfrastructureError):
    """The PostgreSQL server could not be reached or refused the connection."""


class InvalidDatabaseName(InfrastructureError, ValueError):
    """A database name outside `[a-z_][a-z0-9_]{0,62}`."""


def validate_database_name(name: str) -> str:
    if not _DATABASE_NAME.fullmatch(name):
        raise InvalidDatabaseName(f"database name {name!r} must match [a-z_][a-z0-9_]{{0,62}}")
    return name


def database_url(admin_url: str, name: str, driver: str = "asyncpg") -> str:
    """`admin_url` pointed at database `name`, as a SQLAlchemy URL with the given driver."""
    url = _parse(admin_url).set(
        drivername=f"postgresql+{driver}", database=validate_database_name(name)
    )
    return url.render_as_string(hide_password=False)


async def check_postgres(url: str = DEFAULT_ADMIN_URL) -> None:
    """Connect once and run a trivial query; raises PostgresUnavailable with what to do."""
    connection = await _connect(url)
    try:
        await connection.fetchval("SELECT 1")
    finally:
        await connection.close()


async def create_database(admin_url: str, name: str, *, exist_ok: bool = False) -> None:
    """Create database `name` on the server `admin_url` points at."""
    validate_database_name(name)
    connection = await _connect(admin_url)
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists and exist_ok:
            return
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def drop_database(admin_url: str, name: str) -> None:
    """Drop database `name` if it exists, first disconnecting every session using it."""
    validate_database_name(name)
    connection = await _connect(admin_url)
    try:
        await connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        await connection.close()


def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except ValueError:
        raise PostgresUnavailable("the PostgreSQL url is not a valid URL") from None


def _where(url: URL) -> str:
    return f"{url.host or '127.0.0.1'}:{url.port or 5432}"


async def _connect(url: str) -> asyncpg.Connection:
    # asyncpg wants a plain libpq URL, not SQLAlchemy's "postgresql+asyncpg" spelling.
    parsed = _parse(url).set(drivername="postgresql")
    try:
        return await asyncpg.connect(
            parsed.render_as_string(hide_password=False), timeout=CONNECT_TIMEOUT_S
        )
    except (OSError, asyncpg.InterfaceError) as exc:
        raise PostgresUnavailable(
            f"PostgreSQL is not reachable at {_where(parsed)}: start it, or set "
            f"{TEST_URL_VARIABLE} (tests) to the URL of a server that is ({type(exc).__name__})"
        ) from exc
    except asyncpg.PostgresError as exc:
        raise PostgresUnavailable(
            f"PostgreSQL at {_where(parsed)} refused the connection ({type(exc).__name__}, "
            f"SQLSTATE {exc.sqlstate}): check the user, database and authentication in the URL "
            f"or in {TEST_URL_VARIABLE}"
        ) from exc
