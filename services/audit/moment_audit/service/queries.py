"""Who accessed a subject's data, when and why: searches of the audit store, and who may ask.

Used by `moment-audit search | tail` (operators with database access) and by the `audit.commands`
request/reply API (the consent service answering a subject's "who read my data", and staff).

Authorisation trade-off: a `SearchAccess` request carries its bearer token in clear, because the
audit service has no sealing key yet. The token's signature, issuer, audience and expiry are
verified offline against identity's public signing keys (read from Vault Transit), so a forged or
expired token is refused; but anyone able to read `audit.commands` could replay a live token until
it expires, so that topic must be ACL-restricted to its legitimate callers. A revoked token is
refused too: identity's revocations (lockout, recovery, staff deactivation, erasure) are recorded
in audit's `revocations` table by the feed on identity.events (moment_runtime.revocations), and
every accepted token's principal is looked up there, so every instance refuses it as soon as any
instance has consumed the event. Sealing requests to an audit key is future work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from moment_audit.adapters.orm import audit_records
from moment_auth.errors import AuthError, TokenRevoked
from moment_auth.principals import Principal, PrincipalKind, Role, ServiceAccount
from moment_auth.revocation import RevocationStore, check_revoked
from moment_auth.tokens import TokenVerifier
from moment_contracts.audit_queries import AccessEntry, AccessHistory, SearchAccess
from moment_contracts.base import Contract
from moment_contracts.envelope import Envelope
from moment_contracts.errors import ErrorCode, ErrorReply
from moment_crypto.errors import CryptoError
from moment_crypto.vault import VaultClient
from moment_messaging.requests import RequestProcessor
from moment_persistence.errors import DatabaseUnavailable
from moment_persistence.unit_of_work import SqlUnitOfWork
from moment_telemetry.metrics import Metrics

log = logging.getLogger(__name__)

# Staff who may read anyone's access history: investigations and data-subject requests.
READER_ROLES = frozenset({Role.SECURITY_ANALYST, Role.PRIVACY_OFFICER})
# Services that answer subjects' access requests on their behalf.
READER_SERVICES = frozenset({ServiceAccount.CONSENT.value})


class QueryError(Exception):
    """Base of the errors a query request is refused with."""


class NotAuthenticated(QueryError):
    """The token is missing, malformed, forged, expired, or cannot be checked without Vault."""


class CredentialsRevoked(NotAuthenticated):
    """A valid token that identity has revoked since it was issued (answered as any other
    `unauthorised`: which check failed is not said, as identity does not say it either)."""


class AccessNotAllowed(QueryError):
    """The caller may not read this access history."""


@dataclass(frozen=True)
class AccessQuery:
    """Every filter is optional; records must match all that are given."""

    subject_id: str | None = None
    actor_id: str | None = None
    purpose: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100

    @classmethod
    def of(cls, request: SearchAccess) -> AccessQuery:
        return cls(
            subject_id=request.subject_id,
            actor_id=request.actor_id,
            purpose=request.purpose,
            outcome=request.outcome,
            since=request.since,
            until=request.until,
            limit=request.limit,
        )


def _instant(value: datetime, dialect: str) -> datetime:
    # Ingest stores UTC; SQLite keeps no offset, so compare with a naive UTC instant there.
    utc = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return utc.replace(tzinfo=None) if dialect == "sqlite" else utc


def _columns() -> tuple[Any, ...]:
    # Never the whole row: request and trace ids, hashes and Kafka positions stay inside audit.
    c = audit_records.c
    return (
        c.id,
        c.occurred_at,
        c.action,
        c.actor_role,
        c.actor_id,
        c.subject_id,
        c.fields,
        c.purpose,
        c.outcome,
    )


def search_statement(query: AccessQuery, dialect: str = "postgresql") -> Select[Any]:
    """Matching records, newest first (id breaks ties, so equal instants keep ingest order)."""
    c = audit_records.c
    statement = select(*_columns())
    exact = {
        c.subject_id: query.subject_id,
        c.actor_id: query.actor_id,
        c.purpose: query.purpose,
        c.outcome: query.outcome,
    }
    for column, wanted in exact.items():
        if wanted is not None:
            statement = statement.where(column == wanted)
    if query.since is not None:
        statement = statement.where(c.occurred_at >= _instant(query.since, dialect))
    if query.until is not None:
        statement = statement.where(c.occurred_at <= _instant(query.until, dialect))
    return statement.order_by(c.occurred_at.desc(), c.id.desc()).limit(query.limit)


def after_statement(last_id: int, limit: int) -> Select[Any]:
    """Records stored after `last_id`, oldest first: what `tail --follow` prints next."""
    c = audit_records.c
    return select(*_columns()).where(c.id > last_id).order_by(c.id).limit(limit)


def entry_of(row: Mapping[str, Any]) -> AccessEntry:
    occurred = row["occurred_at"]
    if occurred.tzinfo is None:
        occurred = occurred.replace(tzinfo=UTC)
    return AccessEntry(
        occurred_at=occurred,
        action=row["action"],
        actor_role=row["actor_role"],
        actor_id=row["actor_id"],
        subject_id=row["subject_id"],
        fields=tuple(row["fields"] or ()),
        purpose=row["purpose"],
        outcome=row["outcome"],
    )


async def search(session: AsyncSession, query: AccessQuery) -> list[AccessEntry]:
    dialect = session.get_bind().dialect.name
    rows = await session.execute(search_statement(query, dialect))
    return [entry_of(row) for row in rows.mappings()]


async def entries_after(
    session: AsyncSession, last_id: int, limit: int = 500
) -> list[tuple[int, AccessEntry]]:
    rows = await session.execute(after_statement(last_id, limit))
    return [(int(row["id"]), entry_of(row)) for row in rows.mappings()]


def authorise(principal: Principal, query: AccessQuery) -> None:
    """Consent (for subjects), security analysts and privacy officers; a customer for themself."""
    if principal.kind is PrincipalKind.SERVICE and principal.id in READER_SERVICES:
        return
    if principal.kind is PrincipalKind.STAFF and READER_ROLES.intersection(principal.roles):
        return
    if principal.kind is PrincipalKind.CUSTOMER and query.subject_id == principal.id:
        return
    raise AccessNotAllowed("this caller may not read this access history")


def to_error_reply(exc: Exception) -> ErrorReply | None:
    if isinstance(exc, NotAuthenticated):
        return ErrorReply.of(ErrorCode.UNAUTHORISED)
    if isinstance(exc, AccessNotAllowed):
        return ErrorReply.of(ErrorCode.ACCESS_DENIED)
    if isinstance(exc, CryptoError | DatabaseUnavailable):
        return ErrorReply.of(ErrorCode.UNAVAILABLE)
    return None


class LazyVerifier:
    """Identity's public signing keys, read from Vault on the first request (after start-up), and
    the revocations identity announced (one primary-key look-up per verified token)."""

    def __init__(
        self,
        vault: VaultClient | None,
        revocations: RevocationStore,
        metrics: Metrics | None = None,
    ) -> None:
        self._vault = vault
        self._revocations = revocations
        self._verifier: TokenVerifier | None = None
        self._lock = asyncio.Lock()
        self._refused = (
            None
            if metrics is None
            else metrics.counter(
                "moment.tokens.refused",
                unit="{token}",
                description="Valid tokens refused as revoked",
            )
        )

    async def principal(self, token: str) -> Principal:
        verifier = await self._loaded()
        try:
            verified = await verifier.verify(token)
        except AuthError:
            raise NotAuthenticated("credentials rejected") from None
        try:
            # A DatabaseUnavailable here fails closed: answered `unavailable`, never let through.
            await check_revoked(self._revocations, verified.claims)
        except TokenRevoked:
            principal = verified.principal
            log.warning(
                "revoked token refused",
                extra={"principal_id": principal.id, "principal_kind": principal.kind.value},
            )
            if self._refused is not None:
                self._refused.add(1, {"reason": "revoked", "kind": principal.kind.value})
            raise CredentialsRevoked("credentials revoked") from None
        return verified.principal

    async def _loaded(self) -> TokenVerifier:
        if self._vault is None:
            # No Vault, no keys: refuse everyone rather than trust an unverifiable token.
            raise NotAuthenticated("no signing keys to verify tokens with")
        async with self._lock:
            if self._verifier is None:
                self._verifier = await TokenVerifier.from_vault(self._vault)
            return self._verifier


@dataclass(frozen=True)
class AccessQueryHandler:
    requests: RequestProcessor[SqlUnitOfWork]
    verifier: LazyVerifier

    async def search_access(self, request: Envelope, body: SearchAccess) -> None:
        # A read changes nothing: a redelivered request is simply answered again.
        await self.requests.handle(request, lambda: self._prepare(body), remember=False)

    async def _prepare(self, body: SearchAccess) -> Callable[[SqlUnitOfWork], Awaitable[Contract]]:
        query = AccessQuery.of(body)
        authorise(await self.verifier.principal(body.token), query)

        async def run(uow: SqlUnitOfWork) -> Contract:
            return AccessHistory(entries=tuple(await search(uow.session, query)))

        return run
