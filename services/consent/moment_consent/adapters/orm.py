"""Consent's own tables. It learns of subjects from identity's events, never their personal data."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, MetaData, String, Table

from moment_messaging.tables import define_messaging_tables

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

subjects = Table(
    "subjects",
    metadata,
    Column("subject_id", String(36), primary_key=True),
    Column("status", String(32), nullable=False),
    Column("locale", String(2), nullable=False),
    Column("registered_at", DateTime(timezone=True), nullable=False),
)

messaging = define_messaging_tables(metadata)
