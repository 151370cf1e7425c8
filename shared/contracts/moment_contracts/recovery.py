"""Password recovery contracts (v1): the security question the privacy policy requires (P1.2),
optionally with a one-time code the storefront mails. Every value travels sealed.

A recovery is two requests: `StartRecovery` returns the person's own question sealed to the
caller's one-time key (an unknown identifier gets a decoy that looks the same), and
`AnswerRecovery` sets a new password when the answer (and the code, when the code channel is on)
is right.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from moment_contracts.base import Contract, Timestamp
from moment_contracts.identity import Locale
from moment_contracts.sealed import PublicKeyText, SealedBox


class RecoveryStartFields(Contract):
    """The plaintext inside StartRecovery.sealed. `source` as in LoginFields."""

    ce_type: ClassVar[str] = "moment.identity.recovery-start-fields.v1"

    identifier: str = Field(max_length=320, description="username or e-mail")
    source: str = Field(max_length=256)


class StartRecovery(Contract):
    ce_type: ClassVar[str] = "moment.identity.start-recovery.v1"

    locale: Locale = Field(default="ar", description="the language of a decoy question")
    sealed: SealedBox
    reply_key: PublicKeyText = Field(description="X25519 key the question is sealed to")


class RecoveryQuestion(Contract):
    """The plaintext inside RecoveryChallenge.sealed_question."""

    ce_type: ClassVar[str] = "moment.identity.recovery-question.v1"

    question: str
    code_required: bool = Field(description="whether AnswerRecovery needs the mailed code too")


class RecoveryChallenge(Contract):
    """The same shape whether or not the identifier belongs to an account."""

    ce_type: ClassVar[str] = "moment.identity.recovery-challenge.v1"

    sealed_question: SealedBox


class RecoveryAnswerFields(Contract):
    """The plaintext inside AnswerRecovery.sealed."""

    ce_type: ClassVar[str] = "moment.identity.recovery-answer-fields.v1"

    identifier: str = Field(max_length=320, description="username or e-mail")
    answer: str = Field(max_length=512)
    new_password: str = Field(max_length=1024)
    source: str = Field(max_length=256)
    code: str | None = Field(default=None, max_length=16, description="the mailed one-time code")


class AnswerRecovery(Contract):
    ce_type: ClassVar[str] = "moment.identity.answer-recovery.v1"

    sealed: SealedBox
    reply_key: PublicKeyText | None = Field(
        default=None, description="X25519 key the reply's MAC is made for (optional)"
    )


class RecoveryCompleted(Contract):
    """The password was replaced and every session issued before was revoked."""

    ce_type: ClassVar[str] = "moment.identity.recovery-completed.v1"

    subject_id: str


class RecoveryCode(Contract):
    """The plaintext inside RecoveryCodeIssued.sealed_code, for the storefront mailer only. The
    subject id is repeated inside so a box moved to another subject's event is detectable."""

    ce_type: ClassVar[str] = "moment.identity.recovery-code.v1"

    subject_id: str
    code: str


class RecoveryCodeIssued(Contract):
    """Published to identity.events: the mailer opens the code with its private key and looks the
    address up by subject id. Neither the code in clear nor the address is ever on the topic."""

    ce_type: ClassVar[str] = "moment.identity.recovery.code-issued.v1"

    subject_id: str
    locale: Locale
    sealed_code: SealedBox
    expires_at: Timestamp
