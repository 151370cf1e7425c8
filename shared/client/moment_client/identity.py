"""The identity service's calls, with personal data sealed to identity's public key before it
leaves.

Every box is sealed for the one request that carries it (`moment_contracts.sealed.Binding`): the
client picks the request id first, so the id, its source, the reply key, the subject and the field
name are all in the box's associated data, with the time it was sealed.

Every request but `GetSealingKey` names a one-time `reply_key`, and only a reply whose MAC proves
it is identity's answer to that very request is taken (`moment_client.reply_check`).
"""

from __future__ import annotations

import base64
import functools
import uuid
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import replace
from typing import Any, Concatenate, ParamSpec, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from moment_client.client import RequestClient
from moment_client.errors import MomentClientError, ServiceError
from moment_client.reply_check import ReplyMacCheck
from moment_contracts import topics
from moment_contracts.base import Contract
from moment_contracts.errors import ErrorCode
from moment_contracts.identity import (
    GetSealingKey,
    GuardianConsentRecorded,
    Locale,
    Login,
    LoginFields,
    LoginSucceeded,
    RecordGuardianConsent,
    RegisterUser,
    RegistrationAccepted,
    RegistrationFields,
    SealingKey,
    Session,
)
from moment_contracts.principals import (
    ServiceLogin,
    ServiceLoginFields,
    ServiceLoginSucceeded,
    StaffLogin,
    StaffLoginFields,
    StaffLoginSucceeded,
)
from moment_contracts.profile import (
    Credentials,
    ErasePersonalData,
    ErasureCompleted,
    ExportDocument,
    ExportPersonalData,
    FieldChanges,
    PersonalData,
    PersonalDataExport,
    PersonalDataUpdated,
    PersonalDataValues,
    Purpose,
    ReadableField,
    ReadPersonalData,
    UpdatePersonalData,
)
from moment_contracts.recovery import (
    AnswerRecovery,
    RecoveryAnswerFields,
    RecoveryChallenge,
    RecoveryCompleted,
    RecoveryQuestion,
    RecoveryStartFields,
    StartRecovery,
)
from moment_contracts.sealed import (
    Binding,
    SealedBox,
    endorsement_statement,
    key_id,
    open_box,
    public_key_from_text,
    public_key_to_text,
    seal,
)

P = ParamSpec("P")
R = TypeVar("R")
C = TypeVar("C", bound=Contract)


def _reseals(
    method: Callable[Concatenate[IdentityClient, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[IdentityClient, P], Coroutine[Any, Any, R]]:
    """Identity rotates its sealing key (on every erasure, at least): a request sealed to the old
    key is refused with a retryable error, and is sealed again to the new key, once."""

    @functools.wraps(method)
    async def wrapper(client: IdentityClient, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(client, *args, **kwargs)
        except ServiceError as exc:
            if exc.code != ErrorCode.SEALING_KEY_ROTATED:
                raise
            client.forget_sealing_key()
            return await method(client, *args, **kwargs)

    return wrapper


def new_request_id() -> str:
    """Chosen before sealing: every box in the request is bound to it."""
    return str(uuid.uuid4())


def one_time_key() -> tuple[X25519PrivateKey, str]:
    """A reply key for one request, and its text for the request's `reply_key`."""
    key = X25519PrivateKey.generate()
    return key, public_key_to_text(key.public_key())


class UntrustedSealingKey(MomentClientError):
    """The sealing key identity offered is not endorsed by a trusted signing key."""


class IdentityClient:
    def __init__(
        self,
        requests: RequestClient,
        trusted_signing_keys: Mapping[str, Ed25519PublicKey] | None = None,
    ) -> None:
        """`trusted_signing_keys` (identity's token-signing public keys by kid, e.g. from
        `moment_auth.public_keys_by_kid`) makes the client accept only a sealing key identity
        endorsed; without them it trusts the first key it is given (development)."""
        self._requests = requests
        self._trusted = dict(trusted_signing_keys or {})
        self._key: X25519PublicKey | None = None

    def _endorsed(self, reply: SealingKey) -> bool:
        if not self._trusted:
            return True
        signer = self._trusted.get(reply.signer_kid or "")
        if signer is None or reply.signature is None:
            return False
        signature = base64.urlsafe_b64decode(reply.signature + "=" * (-len(reply.signature) % 4))
        try:
            signer.verify(signature, endorsement_statement(reply.kid, reply.public_key))
        except InvalidSignature:
            return False
        return True

    def forget_sealing_key(self) -> None:
        self._key = None

    async def _current_key(self) -> X25519PublicKey:
        """Identity's current sealing key, fetched again (and checked against its endorsement)."""
        self.forget_sealing_key()
        return await self.sealing_key()

    async def _ask(
        self, request: Contract, expect: type[C], request_id: str, reply_key: X25519PrivateKey
    ) -> C:
        """Send `request` and take only identity's authenticated reply to it."""
        return await self._requests.request(
            topics.IDENTITY_COMMANDS,
            request,
            expect,
            request_id=request_id,
            check=await self.reply_check(reply_key),
        )

    async def reply_check(self, reply_key: X25519PrivateKey) -> ReplyMacCheck:
        """Accepts only identity's replies to the request naming `reply_key`, sealed to the
        current sealing key (`moment_contracts.reply_mac`)."""
        return ReplyMacCheck(reply_key, await self.sealing_key(), self._current_key)

    async def sealing_key(self) -> X25519PublicKey:
        if self._key is None:
            reply = await self._requests.request(
                topics.IDENTITY_COMMANDS, GetSealingKey(), SealingKey
            )
            key = public_key_from_text(reply.public_key)
            # Pin the key id in production config so a forged reply can't collect personal data.
            if key_id(key) != reply.kid or not self._endorsed(reply):
                raise UntrustedSealingKey("identity's sealing key is not endorsed by a trusted key")
            self._key = key
        return self._key

    @_reseals
    async def login(
        self, identifier: str, password: str, *, source: str, request_id: str | None = None
    ) -> tuple[str, Session]:
        """Returns the subject id and the session. `source` is where the attempt came from (an IP
        address or device id): identity throttles by it and keeps only a keyed hash."""
        fields = LoginFields(identifier=identifier, password=password, source=source)
        request_id = request_id or new_request_id()
        reply_key, reply_text = one_time_key()
        bound = self.binding(Login.ce_type, request_id, "sealed", reply_key=reply_text)
        reply = await self._ask(
            Login(sealed=await self.seal_fields(fields, bound), reply_key=reply_text),
            LoginSucceeded,
            request_id,
            reply_key,
        )
        session = open_box(reply.sealed_session, reply_key, LoginSucceeded.ce_type)
        return reply.subject_id, Session.model_validate_json(session)

    @_reseals
    async def read(
        self,
        token: str,
        subject_id: str,
        fields: Sequence[ReadableField],
        *,
        purpose: Purpose | None = None,
        request_id: str | None = None,
    ) -> dict[str, str]:
        """Read named fields of a subject; the values arrive sealed to a one-time key."""
        request_id = request_id or new_request_id()
        reply_key, reply_text = one_time_key()
        bound = self.binding(
            ReadPersonalData.ce_type, request_id, reply_key=reply_text, subject_id=subject_id
        )
        request = ReadPersonalData(
            subject_id=subject_id,
            fields=tuple(fields),
            purpose=purpose,
            sealed_credentials=await self.seal_credentials(token, bound),
            reply_key=reply_text,
        )
        reply = await self._ask(request, PersonalData, request_id, reply_key)
        values = open_box(reply.sealed_values, reply_key, PersonalData.ce_type)
        return PersonalDataValues.model_validate_json(values).values

    @_reseals
    async def update(
        self,
        token: str,
        subject_id: str,
        changes: Mapping[ReadableField, str],
        *,
        purpose: Purpose | None = None,
        request_id: str | None = None,
    ) -> PersonalDataUpdated:
        """Rectify fields; the new values travel sealed to identity."""
        request_id = request_id or new_request_id()
        reply_key, reply_text = one_time_key()
        bound = self.binding(
            UpdatePersonalData.ce_type, request_id, reply_key=reply_text, subject_id=subject_id
        )
        sealed_changes = await self.seal_fields(
            FieldChanges(values=dict(changes)), replace(bound, field="sealed_changes")
        )
        request = UpdatePersonalData(
            subject_id=subject_id,
            purpose=purpose,
            sealed_credentials=await self.seal_credentials(token, bound),
            sealed_changes=sealed_changes,
            reply_key=reply_text,
        )
        return await self._ask(request, PersonalDataUpdated, request_id, reply_key)

    @_reseals
    async def export(
        self, token: str, subject_id: str, *, request_id: str | None = None
    ) -> ExportDocument:
        """Everything identity holds about the subject, opened from its sealed reply."""
        request_id = request_id or new_request_id()
        reply_key, reply_text = one_time_key()
        bound = self.binding(
            ExportPersonalData.ce_type, request_id, reply_key=reply_text, subject_id=subject_id
        )
        request = ExportPersonalData(
            subject_id=subject_id,
            sealed_credentials=await self.seal_credentials(token, bound),
            reply_key=reply_text,
        )
        reply = await self._ask(request, PersonalDataExport, request_id, reply_key)
        document = open_box(reply.sealed_export, reply_key, PersonalDataExport.ce_type)
        return ExportDocument.model_validate_json(document)

    @_reseals
    async def erase(
        self, token: str, subject_id: str, *, request_id: str | None = None
    ) -> ErasureCompleted:
        request_id = request_id or new_request_id()
        reply_key, reply_text = one_time_key()
        bound = self.binding(
            ErasePersonalData.ce_type, request_id, reply_key=reply_text, subject_id=subject_id
        )
        request = ErasePersonalData(
            subject_id=subject_id,
            sealed_credentials=await self.seal_credentials(token, bound),
            reply_key=reply_text,
        )
        return await self._ask(request, ErasureCompleted, request_id, reply_key)

    @_reseals
    async def record_guardian_consent(
        self, token: str, subject_id: str, evidence_ref: str, *, request_id: str | None = None
    ) -> GuardianConsentRecorded:
        request_id = request_id or new_request_id()
        reply_key, reply_text = one_time_key()
        bound = self.binding(
            RecordGuardianConsent.ce_type, request_id, reply_key=reply_text, subject_id=subject_id
        )
        request = RecordGuardianConsent(
            subject_id=subject_id,
            evidence_ref=evidence_ref,
            sealed_credentials=await self.seal_credentials(token, bound),
            reply_key=reply_text,
        )
        return await self._ask(request, GuardianConsentRecorded, request_id, reply_key)

    def binding(
        self,
        ce_type: str,
        request_id: str,
        field: str = "sealed_credentials",
        *,
        reply_key: str = "",
        subject_id: str = "",
    ) -> Binding:
        """What a box in this request is sealed for; sent with `request_id` from this client."""
        return Binding(
            ce_type=ce_type,
            ce_id=request_id,
            ce_source=self._requests.config.source,
            field=field,
            reply_key=reply_key,
            subject_id=subject_id,
        )

    async def seal_credentials(self, token: str, bound: Binding) -> SealedBox:
        """The caller's token, sealed to identity: a bearer token never crosses Kafka in clear."""
        return await self.seal_fields(
            Credentials(token=token), replace(bound, field="sealed_credentials")
        )

    async def seal_fields(self, fields: Contract, bound: Binding) -> SealedBox:
        """Personal data (or a secret) sealed to identity's current key for one request."""
        return seal(fields.model_dump_json().encode(), await self.sealing_key(), bound)

    @_reseals
    async def register(
        self, fields: RegistrationFields, *, locale: Locale = "ar", request_id: str | None = None
    ) -> RegistrationAccepted:
        request_id = request_id or new_request_id()
        reply_key, reply_text = one_time_key()
        sealed = await self.seal_fields(
            fields, self.binding(RegisterUser.ce_type, request_id, "sealed", reply_key=reply_text)
        )
        return await self._ask(
            RegisterUser(locale=locale, sealed=sealed, reply_key=reply_text),
            RegistrationAccepted,
            request_id,
            reply_key,
        )

    @_reseals
    async def start_recovery(
        self,
        identifier: str,
        *,
        source: str,
        locale: Locale = "ar",
        request_id: str | None = None,
    ) -> RecoveryQuestion:
        """The account's recovery question, and whether a mailed code is needed too. An unknown
        identifier gets a plausible question all the same: the reply never says who exists."""
        fields = RecoveryStartFields(identifier=identifier, source=source)
        request_id = request_id or new_request_id()
        reply_key, reply_text = one_time_key()
        bound = self.binding(StartRecovery.ce_type, request_id, "sealed", reply_key=reply_text)
        request = StartRecovery(
            locale=locale, sealed=await self.seal_fields(fields, bound), reply_key=reply_text
        )
        reply = await self._ask(request, RecoveryChallenge, request_id, reply_key)
        question = open_box(reply.sealed_question, reply_key, RecoveryChallenge.ce_type)
        return RecoveryQuestion.model_validate_json(question)

    @_reseals
    async def answer_recovery(
        self,
        identifier: str,
        answer: str,
        new_password: str,
        *,
        source: str,
        code: str | None = None,
        request_id: str | None = None,
    ) -> str:
        """Set a new password with the recovery answer (and the mailed code, when required);
        returns the subject id. Every session issued before stops working."""
        fields = RecoveryAnswerFields(
            identifier=identifier,
            answer=answer,
            new_password=new_password,
            source=source,
            code=code,
        )
        request_id = request_id or new_request_id()
        reply_key, reply_text = one_time_key()
        bound = self.binding(AnswerRecovery.ce_type, request_id, "sealed", reply_key=reply_text)
        sealed = await self.seal_fields(fields, bound)
        reply = await self._ask(
            AnswerRecovery(sealed=sealed, reply_key=reply_text),
            RecoveryCompleted,
            request_id,
            reply_key,
        )
        return reply.subject_id

    @_reseals
    async def staff_login(
        self, username: str, password: str, *, source: str, request_id: str | None = None
    ) -> tuple[str, tuple[str, ...], Session]:
        """Returns the staff id, their roles and the session. `source` is where the attempt came
        from: identity throttles by it and keeps only a keyed hash."""
        fields = StaffLoginFields(username=username, password=password, source=source)
        request_id = request_id or new_request_id()
        reply_key, reply_text = one_time_key()
        bound = self.binding(StaffLogin.ce_type, request_id, "sealed", reply_key=reply_text)
        reply = await self._ask(
            StaffLogin(sealed=await self.seal_fields(fields, bound), reply_key=reply_text),
            StaffLoginSucceeded,
            request_id,
            reply_key,
        )
        session = open_box(reply.sealed_session, reply_key, StaffLoginSucceeded.ce_type)
        return reply.staff_id, tuple(reply.roles), Session.model_validate_json(session)

    @_reseals
    async def service_login(
        self, service: str, secret: str, *, request_id: str | None = None
    ) -> Session:
        """A session for a service account (e.g. "storefront"), proven by its secret from Vault."""
        fields = ServiceLoginFields(service=service, secret=secret)
        request_id = request_id or new_request_id()
        reply_key, reply_text = one_time_key()
        bound = self.binding(ServiceLogin.ce_type, request_id, "sealed", reply_key=reply_text)
        reply = await self._ask(
            ServiceLogin(sealed=await self.seal_fields(fields, bound), reply_key=reply_text),
            ServiceLoginSucceeded,
            request_id,
            reply_key,
        )
        session = open_box(reply.sealed_session, reply_key, ServiceLoginSucceeded.ce_type)
        return Session.model_validate_json(session)
