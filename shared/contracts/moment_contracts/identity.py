"""Identity service contracts (v1). Personal data travels only inside sealed boxes."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, StrictInt

from moment_contracts.base import Contract, Timestamp
from moment_contracts.sealed import PublicKeyText, SealedBox

Locale = Literal["ar", "en"]


class GetSealingKey(Contract):
    """Ask identity for the public key that storefront clients seal personal data to."""

    ce_type: ClassVar[str] = "moment.identity.get-sealing-key.v1"


class SealingKey(Contract):
    ce_type: ClassVar[str] = "moment.identity.sealing-key.v1"

    kid: str
    public_key: str
    algorithm: Literal["X25519-HKDF-SHA256-A256GCM"] = "X25519-HKDF-SHA256-A256GCM"
    # Identity endorses its sealing key with its token-signing key (Ed25519, in Vault Transit),
    # so a client that trusts that key can't be handed a forged sealing key, across rotations.
    signer_kid: str | None = None
    signature: str | None = None


class RegistrationFields(Contract):
    """The plaintext inside RegisterUser.sealed. Validated only inside the identity service, by the
    same field rules as a rectification (identity's domain/fields.py); the age is a JSON integer,
    strictly: "30", 30.0 and true are refused, not converted."""

    ce_type: ClassVar[str] = "moment.identity.registration-fields.v1"

    username: str = Field(max_length=256)
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)
    name: str = Field(max_length=512)
    age: StrictInt = Field(ge=0, le=200)
    recovery_question: str = Field(max_length=512)
    recovery_answer: str = Field(max_length=512)


class RegisterUser(Contract):
    ce_type: ClassVar[str] = "moment.identity.register-user.v1"

    locale: Locale = "ar"
    sealed: SealedBox
    reply_key: PublicKeyText | None = Field(
        default=None, description="X25519 key the reply's MAC is made for (optional)"
    )


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
    registered_at: Timestamp


class LoginFields(Contract):
    """The plaintext inside Login.sealed. `source` is the storefront's opaque reference for where
    the attempt came from (an IP address or device id); identity keeps only a keyed hash of it."""

    ce_type: ClassVar[str] = "moment.identity.login-fields.v1"

    identifier: str = Field(max_length=320, description="username or e-mail")
    password: str = Field(max_length=1024)
    source: str = Field(max_length=256)


class Login(Contract):
    ce_type: ClassVar[str] = "moment.identity.login.v1"

    sealed: SealedBox
    reply_key: PublicKeyText = Field(description="X25519 key the session is sealed to")


class Session(Contract):
    """The plaintext inside LoginSucceeded.sealed_session: a bearer token, so never in clear."""

    ce_type: ClassVar[str] = "moment.identity.session.v1"

    token: str
    expires_at: Timestamp


class LoginSucceeded(Contract):
    ce_type: ClassVar[str] = "moment.identity.login-succeeded.v1"

    subject_id: str
    sealed_session: SealedBox


class RecordGuardianConsent(Contract):
    """An operator records a guardian's consent for a minor (PDPL: no full legal capacity under
    18). The consent service will send this itself once it holds guardian consents."""

    ce_type: ClassVar[str] = "moment.identity.record-guardian-consent.v1"

    subject_id: str = Field(max_length=64)
    evidence_ref: str = Field(
        min_length=1, max_length=128, description="where the proof is kept, e.g. a case number"
    )
    sealed_credentials: SealedBox
    reply_key: PublicKeyText | None = Field(
        default=None, description="X25519 key the reply's MAC is made for (optional)"
    )


class GuardianConsentRecorded(Contract):
    """Reply, and the event on identity.events: the account is active from now on."""

    ce_type: ClassVar[str] = "moment.identity.guardian-consent-recorded.v1"

    subject_id: str
    evidence_ref: str
    recorded_at: Timestamp
