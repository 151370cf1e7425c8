"""One database per service: SQLite files in the run folder, or PostgreSQL when DATABASE_URL is set.

OpenBao runs in dev mode, so its keys live only as long as one run. SQLite files are therefore
started afresh each run: rows sealed under an earlier run's keys could never be read again.
PostgreSQL databases are kept (created only when missing), as a developer pointed the stack there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from moment_devstack.postgres import (
    PostgresUnavailable,
    create_database,
    database_url,
    validate_database_name,
)
from moment_devstack.stack import StackError

DATABASE_URL_VARIABLE = "DATABASE_URL"
PREFIX_VARIABLE = "MOMENT_DATABASE_PREFIX"
_POSTGRES_BACKENDS = ("postgresql", "postgres")
_SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")


def override_variable(service: str) -> str:
    return f"MOMENT_{service.upper()}_DATABASE__URL"


def database_name(service: str, environ: Mapping[str, str]) -> str:
    """`moment_<service>`, or `moment_<prefix>_<service>` so tests never touch a developer's own."""
    prefix = environ.get(PREFIX_VARIABLE, "").strip()
    return validate_database_name(f"moment_{prefix}_{service}" if prefix else f"moment_{service}")


def sqlite_url(data_dir: Path, service: str) -> str:
    path = data_dir / f"{service}.db"
    for suffix in _SQLITE_SUFFIXES:
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    return f"sqlite+aiosqlite:///{path}"


def check_admin_url(admin_url: str) -> str:
    """The server URL from DATABASE_URL, if it is a PostgreSQL one; errors never show the value."""
    try:
        backend = make_url(admin_url).get_backend_name()
    except (ArgumentError, ValueError):
        raise StackError(f"{DATABASE_URL_VARIABLE} is not a valid database URL") from None
    if backend not in _POSTGRES_BACKENDS:
        raise StackError(
            f"{DATABASE_URL_VARIABLE} must point at a PostgreSQL server (postgresql://...); "
            "unset it to use SQLite files"
        )
    return admin_url


async def _create_all(admin_url: str, names: Mapping[str, str]) -> dict[str, str]:
    try:
        for name in names.values():
            await create_database(admin_url, name, exist_ok=True)
    except PostgresUnavailable as exc:
        raise StackError(f"{DATABASE_URL_VARIABLE}: {exc}") from None
    return {service: database_url(admin_url, name) for service, name in names.items()}


def resolve_databases(
    data_dir: Path, environ: Mapping[str, str], services: Iterable[str]
) -> dict[str, str]:
    """Each service's async SQLAlchemy URL; a MOMENT_<SERVICE>_DATABASE__URL already set wins."""
    services = tuple(services)
    overrides = {
        s: environ[override_variable(s)] for s in services if environ.get(override_variable(s))
    }
    wanted = [s for s in services if s not in overrides]
    admin_url = environ.get(DATABASE_URL_VARIABLE, "").strip()
    if admin_url and wanted:
        names = {service: database_name(service, environ) for service in wanted}
        created = asyncio.run(_create_all(check_admin_url(admin_url), names))
    else:
        created = {service: sqlite_url(data_dir, service) for service in wanted}
    urls = created | overrides
    return {service: urls[service] for service in services}
