"""Revoked tokens, kept in a service's own database and fed from identity's events.

Any service that accepts tokens (audit's query API today; consent's pages later) needs three
things: a `revocations` table in its metadata (`define_revocations_table`, plus an Alembic
migration), the feed (`register_revocation_feed`), and a look-up per token it accepts
(`moment_auth.revocation.check_revoked` on a `SqlRevocationStore`).

Why a table and not an in-memory `RevocationList`: a consumer group splits identity.events'
partitions between a service's instances, so each instance would see only some revocations, and a
restart would forget them. In the database every instance sees every revocation, whichever
instance consumed it, and it outlives restarts. Recording is idempotent and order-free (each part
of a rule only ever gets stricter), so redelivered or reordered events are harmless and the feed
needs no inbox.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.kafka.subscriber.usecase import DefaultSubscriber
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    false,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from moment_auth.revocation import RevocationRule, RevocationStore
from moment_contracts import topics
from moment_contracts.catalogue import TOPIC_MESSAGES
from moment_contracts.principals import PrincipalTokensRevoked
from moment_contracts.profile import SubjectErased
from moment_messaging.config import KafkaConfig
from moment_messaging.runtime import of_type, subscribe
from moment_persistence.unit_of_work import SqlUnitOfWork

log = logging.getLogger(__name__)

TABLE = "revocations"


def define_revocations_table(metadata: MetaData) -> Table:
    """One row per principal with revoked tokens; the primary key is the per-request look-up."""
    return Table(
        TABLE,
        metadata,
        Column("principal_id", String(128), primary_key=True),
        Column("min_session_version", Integer, nullable=False, server_default=text("0")),
        # Seconds since the epoch; tokens issued (iat) before it are revoked. 0: no such rule.
        Column("issued_before", BigInteger, nullable=False, server_default=text("0")),
        # An erased principal: every token, whatever its version or age.
        Column("permanent", Boolean, nullable=False, server_default=false()),
        Column("updated_at", DateTime(timezone=True), nullable=False),
    )


def _upsert(dialect: str, table: Table, principal_id: str, rule: RevocationRule) -> Any:
    values = {
        "principal_id": principal_id,
        "min_session_version": rule.min_session_version,
        "issued_before": rule.issued_before,
        "permanent": rule.permanent,
        "updated_at": datetime.now(UTC),
    }
    if dialect == "postgresql":
        statement: Any = postgresql.insert(table).values(values)
        greatest: Any = func.greatest
    else:
        statement = sqlite.insert(table).values(values)
        # SQLite's two-argument max() is a scalar, like PostgreSQL's greatest().
        greatest = func.max
    new, old = statement.excluded, table.c
    return statement.on_conflict_do_update(
        index_elements=[old.principal_id],
        set_={
            "min_session_version": greatest(old.min_session_version, new.min_session_version),
            "issued_before": greatest(old.issued_before, new.issued_before),
            "permanent": or_(old.permanent, new.permanent),
            "updated_at": new.updated_at,
        },
    )


async def record_rule(
    session: AsyncSession, table: Table, principal_id: str, rule: RevocationRule
) -> None:
    """Merge `rule` into the stored one in one statement, so racing instances can't relax it."""
    dialect = session.get_bind().dialect.name
    await session.execute(_upsert(dialect, table, principal_id, rule))


async def stored_rule(
    session: AsyncSession, table: Table, principal_id: str
) -> RevocationRule | None:
    c = table.c
    query = select(c.min_session_version, c.issued_before, c.permanent).where(
        c.principal_id == principal_id
    )
    row = (await session.execute(query)).one_or_none()
    if row is None:
        return None
    return RevocationRule(int(row[0]), int(row[1]), bool(row[2]))


class SqlRevocationStore:
    """`moment_auth.revocation.RevocationStore` on a service's database, one short unit of work
    per call (outside any request's writing transaction)."""

    def __init__(self, uow_factory: Callable[[], SqlUnitOfWork], table: Table) -> None:
        self._uow_factory = uow_factory
        self._table = table

    async def record(self, principal_id: str, rule: RevocationRule) -> None:
        async with self._uow_factory() as uow:
            await record_rule(uow.session, self._table, principal_id, rule)
            await uow.commit()

    async def rule(self, principal_id: str) -> RevocationRule | None:
        async with self._uow_factory() as uow:
            return await stored_rule(uow.session, self._table, principal_id)


def register_revocation_feed(
    broker: KafkaBroker, config: KafkaConfig, store: RevocationStore, *, group_id: str
) -> DefaultSubscriber:
    """Record identity's revocations in `store`, on a consumer group of the service's own;
    returns the subscriber.

    A group of its own (not the service's main one), so joining it never rebalances the
    service's other consumers; offsets are committed only after the row is written.
    """
    events = subscribe(
        broker,
        topics.IDENTITY_EVENTS,
        group_id=group_id,
        accepts=TOPIC_MESSAGES[topics.IDENTITY_EVENTS],
        config=config,
    )

    @events(filter=of_type(PrincipalTokensRevoked))
    async def on_principal_tokens_revoked(body: PrincipalTokensRevoked) -> None:
        """From now on, refuse the principal's tokens below the new session version."""
        rule = RevocationRule(min_session_version=body.min_session_version)
        await store.record(body.principal_id, rule)
        log.info("tokens revoked", extra={"principal_id": body.principal_id})

    @events(filter=of_type(SubjectErased))
    async def on_subject_erased_revoke(body: SubjectErased) -> None:
        """An erased subject's tokens are refused for good, whatever their session version."""
        await store.record(body.subject_id, RevocationRule(permanent=True))
        log.info("tokens revoked for good", extra={"principal_id": body.subject_id})

    @events
    async def on_other_identity_event(msg: KafkaMessage) -> None:
        """Identity's other events say nothing about tokens: acknowledged, not dead-lettered."""

    return events


__all__ = [
    "TABLE",
    "SqlRevocationStore",
    "define_revocations_table",
    "record_rule",
    "register_revocation_feed",
    "stored_rule",
]
