"""The identity service's calls, with personal data sealed to identity's public key before it
leaves.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from moment_client.client import RequestClient
from moment_client.errors import MomentClientError
from moment_contracts import topics
from moment_contracts.identity import (
    GetSealingKey,
    Locale,
    RegisterUser,
    RegistrationAccepted,
    RegistrationFields,
    SealingKey,
)
from moment_contracts.sealed import key_id, public_key_from_text, seal


class UntrustedSealingKey(MomentClientError):
    """The key identity offered does not match the pinned key id."""


class IdentityClient:
    def __init__(self, requests: RequestClient, pinned_kid: str | None = None) -> None:
        self._requests = requests
        self._pinned_kid = pinned_kid
        self._key: X25519PublicKey | None = None

    async def sealing_key(self) -> X25519PublicKey:
        if self._key is None:
            reply = await self._requests.request(
                topics.IDENTITY_COMMANDS, GetSealingKey(), SealingKey
            )
            key = public_key_from_text(reply.public_key)
            # Pin the key id in production config so a forged reply can't collect personal data.
            if key_id(key) != reply.kid or (self._pinned_kid and reply.kid != self._pinned_kid):
                raise UntrustedSealingKey("identity's sealing key is not the pinned one")
            self._key = key
        return self._key

    async def register(
        self, fields: RegistrationFields, *, locale: Locale = "ar", request_id: str | None = None
    ) -> RegistrationAccepted:
        sealed = seal(
            fields.model_dump_json().encode(), await self.sealing_key(), RegisterUser.ce_type
        )
        return await self._requests.request(
            topics.IDENTITY_COMMANDS,
            RegisterUser(locale=locale, sealed=sealed),
            RegistrationAccepted,
            request_id=request_id,
        )
