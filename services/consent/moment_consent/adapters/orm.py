"""Consent's own tables. It learns of subjects from identity's events, never their personal data."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, String, Table

from moment_messaging.tables import define_messaging_tables
from moment_persistence.naming import service_metadata

metadata = service_metadata()

subjects = Table(
    "subjects",
    metadata,
    Column("subject_id", String(36), primary_key=True),
    Column("status", String(32), nullable=False),
    Column("locale", String(2), nullable=False),
    Column("registered_at", DateTime(timezone=True), nullable=False),
)

messaging = define_messaging_tables(metadata)
