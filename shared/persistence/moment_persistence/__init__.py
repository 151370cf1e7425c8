"""Async SQLAlchemy 2 databases, units of work and per-service Alembic migrations.

Services depend on this package rather than on SQLAlchemy's engine set-up directly, so every
service gets the same SQLite/PostgreSQL tuning, the same transaction boundary and the same typed
errors. Alembic helpers live in `moment_persistence.migrations` (imported on demand).
"""

from moment_persistence.config import DatabaseConfig
from moment_persistence.database import Database
from moment_persistence.errors import (
    DatabaseUnavailable,
    ForeignKeyViolation,
    IntegrityViolation,
    MigrationError,
    PersistenceError,
    UniqueViolation,
    classify_integrity_error,
    translate_errors,
)
from moment_persistence.unit_of_work import SqlUnitOfWork, UnitOfWorkStateError

__all__ = [
    "Database",
    "DatabaseConfig",
    "DatabaseUnavailable",
    "ForeignKeyViolation",
    "IntegrityViolation",
    "MigrationError",
    "PersistenceError",
    "SqlUnitOfWork",
    "UniqueViolation",
    "UnitOfWorkStateError",
    "classify_integrity_error",
    "translate_errors",
]
