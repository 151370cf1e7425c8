"""The identity service's calls, with personal data sealed to identity's public key before it
leaves.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from moment_client.client import RequestClient
from moment_client.errors import MomentClientError
from moment_contracts import topics
from moment_contracts.identity import (
    GetSealingKey,
    Locale,
    Login,
    LoginFields,
    LoginSucceeded,
    RegisterUser,
    RegistrationAccepted,
    RegistrationFields,
    SealingKey,
    Session,
)
from moment_contracts.sealed import (
    key_id,
    open_box,
    public_key_from_text,
    public_key_to_text,
    seal,
)


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

    async def login(
        self, identifier: str, password: str, *, source: str, request_id: str | None = None
    ) -> tuple[str, Session]:
        """Returns the subject id and the session. `source` is where the attempt came from (an IP
        address or device id): identity throttles by it and keeps only a keyed hash."""
        fields = LoginFields(identifier=identifier, password=password, source=source)
        sealed = seal(fields.model_dump_json().encode(), await self.sealing_key(), Login.ce_type)
        reply_key = X25519PrivateKey.generate()
        reply = await self._requests.request(
            topics.IDENTITY_COMMANDS,
            Login(sealed=sealed, reply_key=public_key_to_text(reply_key.public_key())),
            LoginSucceeded,
            request_id=request_id,
        )
        session = open_box(reply.sealed_session, reply_key, LoginSucceeded.ce_type)
        return reply.subject_id, Session.model_validate_json(session)

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
