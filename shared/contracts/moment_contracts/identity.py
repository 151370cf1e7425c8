"""Identity service contracts (v1). Personal data travels only inside sealed boxes."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field

from moment_contracts.base import Contract
from moment_contracts.sealed import SealedBox

Locale = Literal["ar", "en"]


class GetSealingKey(Contract):
    """Ask identity for the public key that storefront clients seal personal data to."""

    ce_type: ClassVar[str] = "moment.identity.get-sealing-key.v1"


class SealingKey(Contract):
    ce_type: ClassVar[str] = "moment.identity.sealing-key.v1"

    kid: str
    public_key: str
    algorithm: Literal["X25519-HKDF-SHA256-A256GCM"] = "X25519-HKDF-SHA256-A256GCM"


class RegistrationFields(Contract):
    """The plaintext inside RegisterUser.sealed. Validated only inside the identity service."""

    ce_type: ClassVar[str] = "moment.identity.registration-fields.v1"

    username: str = Field(max_length=256)
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)
    name: str = Field(max_length=512)
    age: int = Field(ge=0, le=200)
    recovery_question: str = Field(max_length=512)
    recovery_answer: str = Field(max_length=512)


class RegisterUser(Contract):
    ce_type: ClassVar[str] = "moment.identity.register-user.v1"

    locale: Locale = "ar"
    sealed: SealedBox


class RegistrationAccepted(Contract):
    ce_type: ClassVar[str] = "moment.identity.registration-accepted.v1"

    subject_id: str
    status: Literal["active", "pending-guardian-consent"]


class UserRegistered(Contract):
    """Published to identity.events. Carries the pseudonymous id and status, never a value."""

    ce_type: ClassVar[str] = "moment.identity.user-registered.v1"

    subject_id: str
    status: Literal["active", "pending-guardian-consent"]
    locale: Locale
    registered_at: datetime
