"""Typed persistence errors, so callers never catch SQLAlchemy or driver exceptions.

The two drivers report the same failure differently: asyncpg raises a bare OSError for a refused
connection and names the violated constraint, while SQLite only names the table and columns in
its message. This module maps both onto one small hierarchy.

Messages carry table, column and constraint names but never row values or URL passwords:
asyncpg's error text quotes the offending key values, so integrity errors are re-raised
`from None` to keep that text out of chained tracebacks and logs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Index, MetaData, PrimaryKeyConstraint, UniqueConstraint
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

# SQLSTATE classes/codes that mean "the server cannot serve us now", not "the query is wrong".
_PG_UNAVAILABLE_PREFIXES = ("08", "28", "57P")
_PG_UNAVAILABLE_CODES = frozenset({"3D000", "53300"})
_SQLITE_UNAVAILABLE_MESSAGES = (
    "unable to open database file",
    "database is locked",
    "disk i/o error",
    "database or disk is full",
)
_PG_UNIQUE, _PG_FOREIGN_KEY = "23505", "23503"
_SQLITE_UNIQUE_NAMES = frozenset({"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"})
_SQLITE_FOREIGN_KEY_NAME = "SQLITE_CONSTRAINT_FOREIGNKEY"
_SQLITE_COLUMNS = re.compile(r"constraint failed: (?P<cols>[\w.]+(?:, [\w.]+)*)\s*$")
_PG_DETAIL_COLUMNS = re.compile(r"^Key \((?P<cols>.+?)\)=\(")


class PersistenceError(Exception):
    """Base class for every error raised by moment_persistence."""


class DatabaseUnavailable(PersistenceError):
    """The database cannot be reached or refused the session; usually worth retrying later."""

    def __init__(self, target: str, reason: str) -> None:
        super().__init__(f"database unavailable at {target}: {reason}")
        self.target = target
        self.reason = reason


class MigrationError(PersistenceError):
    """The schema is at a revision the code does not know, or a migration failed."""


class IntegrityViolation(PersistenceError):
    """A write broke a database constraint; the names identify which, never the values."""

    kind = "integrity"

    def __init__(
        self,
        *,
        constraint: str | None = None,
        table: str | None = None,
        columns: tuple[str, ...] = (),
        sqlstate: str | None = None,
    ) -> None:
        self.constraint = constraint
        self.table = table
        self.columns = columns
        self.sqlstate = sqlstate
        where = constraint or (f"{table}({', '.join(columns)})" if table else "unknown")
        super().__init__(f"{self.kind} constraint violated: {where}")


class UniqueViolation(IntegrityViolation):
    """A row with the same unique key already exists."""

    kind = "unique"


class ForeignKeyViolation(IntegrityViolation):
    """A referenced row is missing, or a referenced row was deleted."""

    kind = "foreign key"


def classify_integrity_error(
    exc: IntegrityError, metadata: MetaData | None = None
) -> IntegrityViolation:
    """Map a SQLAlchemy IntegrityError from either dialect onto a typed violation.

    SQLite does not report constraint names; pass the `metadata` holding the table to have the
    name of a unique constraint (or unique index, or primary key) looked up from its columns.
    """
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if isinstance(sqlstate, str):
        return _classify_postgres(orig, sqlstate)
    driver = getattr(orig, "driver_exception", None) or orig
    errorname = getattr(driver, "sqlite_errorname", "")
    table, columns = _sqlite_columns(str(driver))
    if errorname in _SQLITE_UNIQUE_NAMES:
        constraint = _unique_name(metadata, table, columns)
        return UniqueViolation(constraint=constraint, table=table, columns=columns)
    if errorname == _SQLITE_FOREIGN_KEY_NAME:
        return ForeignKeyViolation(table=table, columns=columns)
    return IntegrityViolation(table=table, columns=columns)


def _classify_postgres(orig: object, sqlstate: str) -> IntegrityViolation:
    driver = getattr(orig, "driver_exception", None) or getattr(orig, "__cause__", None)
    detail = getattr(driver, "detail", None) or ""
    match = _PG_DETAIL_COLUMNS.match(detail)
    columns = tuple(c.strip() for c in match["cols"].split(",")) if match else ()
    violation = {_PG_UNIQUE: UniqueViolation, _PG_FOREIGN_KEY: ForeignKeyViolation}.get(
        sqlstate, IntegrityViolation
    )
    return violation(
        constraint=getattr(driver, "constraint_name", None),
        table=getattr(driver, "table_name", None),
        columns=columns,
        sqlstate=sqlstate,
    )


def _sqlite_columns(message: str) -> tuple[str | None, tuple[str, ...]]:
    match = _SQLITE_COLUMNS.search(message)
    if not match:
        return None, ()
    qualified = [part.strip() for part in match["cols"].split(",")]
    tables = {part.rpartition(".")[0] for part in qualified if "." in part}
    table = tables.pop() if len(tables) == 1 else None
    return table, tuple(part.rpartition(".")[2] for part in qualified)


def _unique_name(
    metadata: MetaData | None, table: str | None, columns: tuple[str, ...]
) -> str | None:
    if metadata is None or table is None or table not in metadata.tables:
        return None
    wanted = set(columns)
    sql_table = metadata.tables[table]
    for constraint in sql_table.constraints:
        if (
            isinstance(constraint, UniqueConstraint | PrimaryKeyConstraint)
            and isinstance(constraint.name, str)
            and set(constraint.columns.keys()) == wanted
        ):
            return constraint.name
    for index in sql_table.indexes:
        if _is_unique_index_on(index, wanted) and isinstance(index.name, str):
            return index.name
    return None


def _is_unique_index_on(index: Index, wanted: set[str]) -> bool:
    return bool(index.unique) and {column.name for column in index.columns} == wanted


def is_unavailable(exc: BaseException) -> bool:
    """True when `exc` means the database is down, unreachable or refusing sessions."""
    if isinstance(exc, OSError | PoolTimeoutError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate in _PG_UNAVAILABLE_CODES or sqlstate.startswith(_PG_UNAVAILABLE_PREFIXES)
    message = str(getattr(exc.orig, "driver_exception", None) or exc.orig).lower()
    return message.startswith(_SQLITE_UNAVAILABLE_MESSAGES)


def unavailable_reason(exc: BaseException) -> str:
    """A short description of why the database is unavailable, free of URLs and row values."""
    if isinstance(exc, OSError):
        detail = exc.strerror or type(exc).__name__
        return f"{type(exc).__name__}: {detail}"
    if isinstance(exc, PoolTimeoutError):
        return "timed out waiting for a pooled connection"
    orig = getattr(exc, "orig", None)
    driver = getattr(orig, "driver_exception", None) or getattr(orig, "__cause__", None) or orig
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        return f"{type(driver).__name__} (SQLSTATE {sqlstate})"
    return str(driver).splitlines()[0] if driver is not None else type(exc).__name__


@contextmanager
def translate_errors(target: str, metadata: MetaData | None = None) -> Iterator[None]:
    """Re-raise driver errors from the block as PersistenceError subclasses.

    Works around `await` calls too. Errors that are neither integrity nor availability problems
    (syntax errors, missing tables) propagate unchanged: they are bugs, not conditions to handle.
    """
    try:
        yield
    except IntegrityError as exc:
        raise classify_integrity_error(exc, metadata) from None
    except (DBAPIError, OSError, PoolTimeoutError) as exc:
        if is_unavailable(exc):
            raise DatabaseUnavailable(target, unavailable_reason(exc)) from exc
        raise
