"""Revoked tokens, per principal, as every service learns them from identity's events.

Identity publishes `PrincipalTokensRevoked` (lockout, password recovery, account erased, staff
off-boarding) and `SubjectErased`; each service that accepts tokens records them, so
verification needs no call to identity. Three rules may apply to a principal: tokens with a
session version below a minimum are revoked, so are tokens issued before a point in time, and a
permanent rule (an erased principal) revokes every token, whatever its version.

Two ways to hold them: `RevocationList`, in memory (one process that sees every event), and a
`RevocationStore` (`moment_runtime.revocations.SqlRevocationStore`), shared by every instance of a
service through its database and kept across restarts; `check_revoked` asks a store.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, Self

from moment_auth.claims import TokenClaims
from moment_auth.errors import TokenRevoked


@dataclass
class _Revocation:
    min_session_version: int
    issued_before: float
    recorded_at: float


class RevocationList:
    """In-memory revocations by principal id; entries only ever get stricter."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._entries: dict[str, _Revocation] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def record(
        self,
        principal_id: str,
        *,
        min_session_version: int | None = None,
        issued_before: float | None = None,
    ) -> None:
        """Revoke the principal's tokens with sv < min_session_version or iat < issued_before.

        A rule is never relaxed, so replayed or reordered events cannot lift a revocation.
        """
        if min_session_version is None and issued_before is None:
            raise ValueError("a revocation needs min_session_version or issued_before")
        entry = self._entries.get(principal_id)
        if entry is None:
            entry = _Revocation(0, -math.inf, self._clock())
            self._entries[principal_id] = entry
        if min_session_version is not None:
            entry.min_session_version = max(entry.min_session_version, min_session_version)
        if issued_before is not None:
            entry.issued_before = max(entry.issued_before, issued_before)
        entry.recorded_at = self._clock()

    def is_revoked(self, claims: TokenClaims) -> bool:
        entry = self._entries.get(claims.sub)
        if entry is None:
            return False
        # iat is in whole seconds, so a token from the revocation's own second counts as earlier:
        # rejecting a fresh token is recoverable, accepting a revoked one is not.
        return claims.sv < entry.min_session_version or claims.iat < entry.issued_before

    def check(self, claims: TokenClaims) -> None:
        if self.is_revoked(claims):
            raise TokenRevoked("the token has been revoked")

    def prune(self, max_age_s: float) -> int:
        """Forget revocations recorded more than `max_age_s` ago; returns how many.

        Safe once max_age_s exceeds the longest token lifetime plus leeway: every token a
        forgotten entry revoked has expired by then, and identity issues newer ones only with
        the raised session version.
        """
        cutoff = self._clock() - max_age_s
        stale = [pid for pid, entry in self._entries.items() if entry.recorded_at < cutoff]
        for pid in stale:
            del self._entries[pid]
        return len(stale)


class RevocationEvent(Protocol):
    """What `apply_revocation` reads; moment_contracts' PrincipalTokensRevoked has it."""

    @property
    def principal_id(self) -> str: ...

    @property
    def min_session_version(self) -> int: ...


def apply_revocation(event: RevocationEvent, revocations: RevocationList) -> None:
    """Feed one of identity's PrincipalTokensRevoked events into a service's RevocationList.

    Safe to call for replayed or reordered events: a revocation is never relaxed.
    """
    revocations.record(event.principal_id, min_session_version=event.min_session_version)


@dataclass(frozen=True)
class RevocationRule:
    """What is revoked for one principal. `issued_before` is in seconds since the epoch."""

    min_session_version: int = 0
    issued_before: int = 0
    permanent: bool = False

    def revokes(self, claims: TokenClaims) -> bool:
        # As RevocationList: a token from the rule's own second counts as earlier.
        return (
            self.permanent
            or claims.sv < self.min_session_version
            or claims.iat < self.issued_before
        )

    def merged(self, other: RevocationRule) -> Self:
        """The stricter of both on every part: a rule is never relaxed, whatever the order."""
        return type(self)(
            max(self.min_session_version, other.min_session_version),
            max(self.issued_before, other.issued_before),
            self.permanent or other.permanent,
        )


class RevocationStore(Protocol):
    """Revocations a service keeps where all its instances see them (its database)."""

    async def record(self, principal_id: str, rule: RevocationRule) -> None:
        """Merge `rule` into the principal's rule (never relaxing it); idempotent."""
        ...

    async def rule(self, principal_id: str) -> RevocationRule | None: ...


async def check_revoked(store: RevocationStore, claims: TokenClaims) -> None:
    """TokenRevoked when the store revokes this (already verified) token."""
    rule = await store.rule(claims.sub)
    if rule is not None and rule.revokes(claims):
        raise TokenRevoked("the token has been revoked")
