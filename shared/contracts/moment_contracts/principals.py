"""Staff and service-account principals (v1): their logins, and the revocation of their tokens.

Credentials travel only inside sealed boxes, and session tokens come back sealed to a key the
caller chose for that one reply (see `identity.Session` for the plaintext inside).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from moment_contracts.base import Contract
from moment_contracts.sealed import PublicKeyText, SealedBox

# The same names as moment_auth.Role; contracts stay free of the auth package.
StaffRole = Literal[
    "support-operator", "privacy-officer", "legal-counsel", "security-analyst", "admin"
]


class StaffLoginFields(Contract):
    """The plaintext inside StaffLogin.sealed. `source` is where the attempt came from (an IP
    address or device id); identity keeps only a keyed hash of it."""

    ce_type: ClassVar[str] = "moment.identity.staff-login-fields.v1"

    username: str = Field(max_length=256)
    password: str = Field(max_length=1024)
    source: str = Field(max_length=256)


class StaffLogin(Contract):
    ce_type: ClassVar[str] = "moment.identity.staff-login.v1"

    sealed: SealedBox
    reply_key: PublicKeyText = Field(description="X25519 key the session is sealed to")


class StaffLoginSucceeded(Contract):
    ce_type: ClassVar[str] = "moment.identity.staff-login-succeeded.v1"

    staff_id: str = Field(max_length=64)
    roles: tuple[StaffRole, ...]
    sealed_session: SealedBox


class ServiceLoginFields(Contract):
    """The plaintext inside ServiceLogin.sealed: a service account's name and its secret."""

    ce_type: ClassVar[str] = "moment.identity.service-login-fields.v1"

    service: str = Field(max_length=64)
    secret: str = Field(max_length=256)


class ServiceLogin(Contract):
    ce_type: ClassVar[str] = "moment.identity.service-login.v1"

    sealed: SealedBox
    reply_key: PublicKeyText = Field(description="X25519 key the session is sealed to")


class ServiceLoginSucceeded(Contract):
    ce_type: ClassVar[str] = "moment.identity.service-login-succeeded.v1"

    service: str = Field(max_length=64)
    sealed_session: SealedBox


class PrincipalTokensRevoked(Contract):
    """Published to identity.events whenever identity raises a principal's session version
    (account lockout, recovery, erasure, staff deactivation). Every service that accepts tokens
    records it (moment_runtime.revocations) and refuses the older tokens from then on."""

    ce_type: ClassVar[str] = "moment.identity.principal-tokens-revoked.v1"

    principal_id: str = Field(max_length=128, description="subject id, staff id or service name")
    min_session_version: int = Field(ge=1, description="tokens with a lower version are revoked")
