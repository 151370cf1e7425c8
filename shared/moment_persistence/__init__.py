"""Async SQLAlchemy 2 databases, units of work and per-service Alembic migrations."""
