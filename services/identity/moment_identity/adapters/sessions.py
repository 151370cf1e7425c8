"""Customer sessions are short-lived tokens signed by Vault Transit (the key never leaves Vault)."""

from __future__ import annotations

from moment_auth.principals import Principal
from moment_auth.tokens import TokenSigner
from moment_contracts.identity import Session


class TokenSessionIssuer:
    def __init__(self, signer: TokenSigner) -> None:
        self._signer = signer

    async def issue(self, subject_id: str, session_version: int) -> Session:
        issued = await self._signer.issue(Principal.customer(subject_id, session_version))
        return Session(token=issued.token, expires_at=issued.expires_at)
