"""The outbox and inbox tables, defined on each service's own MetaData.

Each service owns its database, so each gets its own copy of these tables, created by its own
Alembic migrations. Writing to them in the same transaction as the state change is what makes the
outbox transactional and the consumers idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    text,
)

# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
_ID = BigInteger().with_variant(Integer(), "sqlite")


@dataclass(frozen=True)
class MessagingTables:
    outbox: Table
    inbox: Table


def define_messaging_tables(metadata: MetaData, *, replies: bool = False) -> MessagingTables:
    """`replies`: the service answers requests from its inbox, and keeps the digest of each
    request beside its stored reply (see `moment_contracts.reply_mac`)."""
    outbox = Table(
        "outbox",
        metadata,
        Column("id", _ID, primary_key=True, autoincrement=True),
        Column("event_id", String(64), nullable=False, unique=True),
        Column("topic", String(249), nullable=False),
        Column("message_key", LargeBinary, nullable=True),
        Column("headers", JSON, nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("published_at", DateTime(timezone=True), nullable=True),
        Column("attempts", Integer, nullable=False, server_default=text("0")),
        Column("last_error", String(500), nullable=True),
    )
    Index(
        "ix_outbox_unpublished",
        outbox.c.id,
        postgresql_where=outbox.c.published_at.is_(None),
        sqlite_where=outbox.c.published_at.is_(None),
    )
    inbox = Table(
        "inbox",
        metadata,
        Column("consumer", String(128), primary_key=True),
        Column("source", String(256), primary_key=True),
        Column("event_id", String(128), primary_key=True),
        Column("processed_at", DateTime(timezone=True), nullable=False),
        Column("reply_type", String(128), nullable=True),
        Column("reply", LargeBinary, nullable=True),
        *([Column("request_digest", LargeBinary(32), nullable=True)] if replies else []),
    )
    return MessagingTables(outbox=outbox, inbox=inbox)
