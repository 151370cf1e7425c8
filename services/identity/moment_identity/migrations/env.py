"""Alembic environment for the identity service's own database."""

from moment_identity.adapters.orm import metadata
from moment_persistence.migrations import run_env

run_env(metadata)
