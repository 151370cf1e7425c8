"""Alembic environment for the consent service's own database."""

from moment_consent.adapters.orm import metadata
from moment_persistence.migrations import run_env

run_env(metadata)
