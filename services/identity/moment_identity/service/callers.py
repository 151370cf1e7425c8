"""Who is calling: the bearer token verified offline, then checked against identity's own records,
which are the authority on revocation (a raised session version, a deactivated account)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError
from sqlalchemy import select

from moment_auth.errors import TokenError
from moment_auth.principals import Principal, PrincipalKind
from moment_auth.tokens import TokenVerifier
from moment_contracts.profile import Credentials
from moment_contracts.sealed import Binding, SealedBox
from moment_identity.adapters.orm import staff_accounts, users
from moment_identity.adapters.sealing import SealedBoxRefused, SealedInputOpener, SealingKeyRotated
from moment_identity.domain.errors import IdentityError, SealedInputRejected
from moment_identity.service.unit_of_work import IdentityUnitOfWork


class NotAuthenticated(IdentityError):
    """The token is missing, invalid, expired or revoked. Which of these is not said."""


@dataclass(frozen=True)
class CallerCheck:
    opener: SealedInputOpener
    verifier: TokenVerifier

    async def caller(self, uow: IdentityUnitOfWork, box: SealedBox, bound: Binding) -> Principal:
        try:
            token = Credentials.model_validate_json(self.opener.open(box, bound)).token
            principal = (await self.verifier.verify(token)).principal
        except (SealingKeyRotated, SealedBoxRefused):
            # Not a bad credential: a rotated key is re-sealed and retried by the client; a box
            # that is not this request's is refused and audited as such by the handler.
            raise
        except (SealedInputRejected, ValidationError, TokenError):
            raise NotAuthenticated("credentials rejected") from None
        if not await _current(uow, principal):
            raise NotAuthenticated("credentials revoked")
        return principal


async def _current(uow: IdentityUnitOfWork, principal: Principal) -> bool:
    """Tokens carry the session version they were issued under; an older one is revoked."""
    if principal.kind is PrincipalKind.SERVICE:
        return True
    if principal.kind is PrincipalKind.CUSTOMER:
        query = select(users.c.session_version).where(users.c.subject_id == principal.id)
    else:
        query = select(staff_accounts.c.session_version).where(
            staff_accounts.c.staff_id == principal.id, staff_accounts.c.active.is_(True)
        )
    version = (await uow.session.execute(query)).scalar_one_or_none()
    return version is not None and principal.session_version >= version
