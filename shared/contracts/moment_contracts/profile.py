"""Reading and changing personal data (P1.1, P2.1, P2.2). Values cross Kafka only sealed: requests
to identity's key, replies to the key the requester names in `reply_key`."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from moment_contracts.base import Contract, Timestamp
from moment_contracts.sealed import PublicKeyText, SealedBox

ReadableField = Literal["name", "age", "email", "username", "recovery_question"]
Purpose = Literal["store-quality", "user-dealings", "legal-disclosure"]


class Credentials(Contract):
    """The plaintext inside `sealed_credentials`: the caller's bearer token, never in clear."""

    ce_type: ClassVar[str] = "moment.identity.credentials.v1"

    token: str = Field(max_length=4096)


class ReadPersonalData(Contract):
    """Read named fields of one subject for a declared purpose. Every read is audited."""

    ce_type: ClassVar[str] = "moment.identity.read-personal-data.v1"

    subject_id: str = Field(max_length=64)
    fields: tuple[ReadableField, ...] = Field(min_length=1, max_length=5)
    purpose: Purpose | None = None
    case_id: str | None = Field(default=None, max_length=64)
    sealed_credentials: SealedBox
    reply_key: PublicKeyText = Field(description="X25519 key the reply is sealed to")


class PersonalDataValues(Contract):
    """The plaintext inside PersonalData.sealed_values."""

    ce_type: ClassVar[str] = "moment.identity.personal-data-values.v1"

    values: dict[str, str]


class PersonalData(Contract):
    ce_type: ClassVar[str] = "moment.identity.personal-data.v1"

    subject_id: str
    fields: tuple[str, ...]
    sealed_values: SealedBox
    read_at: Timestamp


class FieldChanges(Contract):
    """The plaintext inside UpdatePersonalData.sealed_changes. Each value is text (an age too, in
    ASCII digits) and is checked by the same field rules as at registration; no value is longer
    than the longest a registration takes (a name's 512 characters)."""

    ce_type: ClassVar[str] = "moment.identity.field-changes.v1"

    values: dict[ReadableField, Annotated[str, Field(max_length=512)]] = Field(
        min_length=1, max_length=5
    )


class UpdatePersonalData(Contract):
    """Rectification: change named fields. The event that follows names fields, never values."""

    ce_type: ClassVar[str] = "moment.identity.update-personal-data.v1"

    subject_id: str = Field(max_length=64)
    purpose: Purpose | None = None
    sealed_credentials: SealedBox
    sealed_changes: SealedBox
    reply_key: PublicKeyText | None = Field(
        default=None, description="X25519 key the reply's MAC is made for (optional)"
    )


class PersonalDataUpdated(Contract):
    ce_type: ClassVar[str] = "moment.identity.personal-data-updated.v1"

    subject_id: str
    fields: tuple[str, ...]


class ProfileUpdated(Contract):
    """Published to identity.events after a rectification."""

    ce_type: ClassVar[str] = "moment.identity.profile-updated.v1"

    subject_id: str
    fields: tuple[str, ...]
    updated_at: Timestamp


class ExportPersonalData(Contract):
    """Everything identity holds about a subject, as JSON, sealed to `reply_key`."""

    ce_type: ClassVar[str] = "moment.identity.export-personal-data.v1"

    subject_id: str = Field(max_length=64)
    sealed_credentials: SealedBox
    reply_key: PublicKeyText = Field(description="X25519 key the reply is sealed to")


class ExportAccount(Contract):
    """The account facts inside ExportDocument.account. `key_version` is text (it always was);
    the two times are RFC 3339 with their zone, like every timestamp on the wire."""

    ce_type: ClassVar[str] = "moment.identity.export-account.v1"

    status: str
    locale: str
    key_version: str
    created_at: Timestamp
    updated_at: Timestamp


class ExportDocument(Contract):
    """The plaintext inside PersonalDataExport.sealed_export."""

    ce_type: ClassVar[str] = "moment.identity.export-document.v1"

    subject_id: str
    personal_data: dict[str, str]
    account: ExportAccount
    exported_at: Timestamp


class PersonalDataExport(Contract):
    ce_type: ClassVar[str] = "moment.identity.personal-data-export.v1"

    subject_id: str
    sealed_export: SealedBox


class ErasePersonalData(Contract):
    """Erase a subject by crypto-shredding: the subject's key is destroyed, the rows removed."""

    ce_type: ClassVar[str] = "moment.identity.erase-personal-data.v1"

    subject_id: str = Field(max_length=64)
    sealed_credentials: SealedBox
    reply_key: PublicKeyText | None = Field(
        default=None, description="X25519 key the reply's MAC is made for (optional)"
    )


class ErasureCompleted(Contract):
    ce_type: ClassVar[str] = "moment.identity.erasure-completed.v1"

    subject_id: str
    erased_at: Timestamp


class SubjectErased(Contract):
    """Published to identity.events: every service forgets the subject."""

    ce_type: ClassVar[str] = "moment.identity.subject-erased.v1"

    subject_id: str
    erased_at: Timestamp
