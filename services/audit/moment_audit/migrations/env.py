"""Alembic environment for the audit service's own database."""

from moment_audit.adapters.orm import metadata
from moment_persistence.migrations import run_env

run_env(metadata)
