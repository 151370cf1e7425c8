"""An attacker who can read and write identity.commands lifts sealed boxes out of other people's
requests and puts them into requests of their own. Each box is bound to the request that carried
it, so every such move is refused with a typed error, and audited as a denial."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import pytest
from aiokafka.structs import ConsumerRecord
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from moment_audit.adapters.orm import audit_records
from moment_auth.principals import Role
from moment_client.client import ClientConfig, RequestClient
from moment_client.errors import ServiceError
from moment_client.identity import IdentityClient
from moment_contracts import topics
from moment_contracts.base import Contract
from moment_contracts.errors import ErrorCode, ErrorReply
from moment_contracts.identity import (
    GuardianConsentRecorded,
    Login,
    LoginFields,
    LoginSucceeded,
    RecordGuardianConsent,
    RegisterUser,
    RegistrationAccepted,
)
from moment_contracts.principals import StaffLogin, StaffLoginSucceeded
from moment_contracts.profile import (
    Credentials,
    ErasePersonalData,
    ErasureCompleted,
    ExportPersonalData,
    FieldChanges,
    PersonalData,
    PersonalDataExport,
    PersonalDataUpdated,
    ReadPersonalData,
    UpdatePersonalData,
)
from moment_contracts.recovery import (
    AnswerRecovery,
    RecoveryChallenge,
    RecoveryCompleted,
    StartRecovery,
)
from moment_contracts.sealed import public_key_to_text, seal
from tests.identity.integration.test_login import PASSWORD, register
from tests.identity.integration.test_reads import customer_token, staff_token
from tests.support.audit_store import stored_audit
from tests.support.kafka import header, read_topic
from tests.support.produce import resend_raw
from tests.support.suite import Suite

M = TypeVar("M", bound=Contract)
VICTIM_SOURCE = "/storefront/test"  # the source identity_client's requests carry


@pytest.fixture(scope="module")
async def attacker(suite: Suite) -> AsyncIterator[RequestClient]:
    """The attacker's own client and reply topic; it claims to be the storefront."""
    client = RequestClient(
        ClientConfig(
            bootstrap_servers=suite.kafka.bootstrap_servers, source=VICTIM_SOURCE, timeout_s=60
        )
    )
    await client.start()
    yield client
    await client.stop()


def attacker_key() -> tuple[X25519PrivateKey, str]:
    key = X25519PrivateKey.generate()
    return key, public_key_to_text(key.public_key())


async def captured(
    suite: Suite, request_id: str, model: type[M]
) -> tuple[M, ConsumerRecord[bytes, bytes]]:
    """The victim's request as it sits on identity.commands."""
    records = await read_topic(
        suite.kafka.bootstrap_servers,
        topics.IDENTITY_COMMANDS,
        where=lambda r: header(r, "ce_id") == request_id,
        timeout_s=60,
    )
    assert records, "the victim's request is not on identity.commands"
    return model.model_validate_json(records[0].value or b""), records[0]


async def refused(
    attacker: RequestClient, body: Contract, expect: type[Contract], request_id: str
) -> ErrorCode:
    with pytest.raises(ServiceError) as caught:
        await attacker.request(topics.IDENTITY_COMMANDS, body, expect, request_id=request_id)
    return caught.value.code


async def denied_audit(suite: Suite, request_id: str, action: str) -> dict[str, Any]:
    rows = await stored_audit(suite, audit_records.c.request_id == request_id, expect=1)
    assert [(r["action"], r["outcome"]) for r in rows] == [(action, "denied")]
    return rows[0]


async def victim_read(
    client: IdentityClient, token: str, subject_id: str, **kw: Any
) -> tuple[str, dict[str, str]]:
    request_id = str(uuid.uuid4())
    values = await client.read(token, subject_id, ["name", "email"], request_id=request_id, **kw)
    return request_id, values


async def test_a_customers_credentials_box_does_not_read_for_the_attacker(
    suite: Suite, identity_client: IdentityClient, attacker: RequestClient
) -> None:
    subject_id, tag = await register(identity_client)
    token = await customer_token(identity_client, tag)
    victim_id, _ = await victim_read(identity_client, token, subject_id)
    original, _ = await captured(suite, victim_id, ReadPersonalData)

    _, reply_text = attacker_key()
    forged_id = str(uuid.uuid4())
    forged = original.model_copy(
        update={"reply_key": reply_text, "fields": ("name", "email", "age", "username")}
    )
    assert await refused(attacker, forged, PersonalData, forged_id) == ErrorCode.UNAUTHORISED
    row = await denied_audit(suite, forged_id, "read")
    assert (row["subject_id"], row["actor_id"]) == (subject_id, "anonymous")
    # Its own reply key but a new id, or its own id but the attacker's key: neither opens.
    same_key = original.model_copy()
    new_id = str(uuid.uuid4())
    assert await refused(attacker, same_key, PersonalData, new_id) == ErrorCode.UNAUTHORISED
    await denied_audit(suite, new_id, "read")


async def test_a_privacy_officers_box_opens_neither_another_subject_nor_export_nor_erasure(
    suite: Suite, identity_client: IdentityClient, attacker: RequestClient
) -> None:
    subject_id, _ = await register(identity_client)
    other_id, _ = await register(identity_client)
    officer = await staff_token(suite, Role.PRIVACY_OFFICER)
    victim_id, _ = await victim_read(identity_client, officer, subject_id, purpose="user-dealings")
    original, _ = await captured(suite, victim_id, ReadPersonalData)
    box = original.sealed_credentials
    _, reply_text = attacker_key()

    another = original.model_copy(update={"subject_id": other_id, "reply_key": reply_text})
    export = ExportPersonalData(subject_id=subject_id, sealed_credentials=box, reply_key=reply_text)
    erase = ErasePersonalData(subject_id=subject_id, sealed_credentials=box)
    for body, expect, action in (
        (another, PersonalData, "read"),
        (export, PersonalDataExport, "export"),
        (erase, ErasureCompleted, "erase"),
    ):
        forged_id = str(uuid.uuid4())
        assert await refused(attacker, body, expect, forged_id) == ErrorCode.UNAUTHORISED
        row = await denied_audit(suite, forged_id, action)
        assert row["subject_id"] == getattr(body, "subject_id", None)
    # Nothing was erased: the officer still reads the subject.
    assert (await victim_read(identity_client, officer, subject_id, purpose="user-dealings"))[1]


async def test_a_login_box_in_the_attackers_login_gets_no_session(
    suite: Suite, identity_client: IdentityClient, attacker: RequestClient
) -> None:
    _, tag = await register(identity_client)
    victim_id = str(uuid.uuid4())
    await identity_client.login(f"user_{tag}", PASSWORD, source="victim", request_id=victim_id)
    original, _ = await captured(suite, victim_id, Login)
    _, reply_text = attacker_key()

    forged_id = str(uuid.uuid4())
    forged = Login(sealed=original.sealed, reply_key=reply_text)
    assert await refused(attacker, forged, LoginSucceeded, forged_id) == ErrorCode.MALFORMED
    await denied_audit(suite, forged_id, "login")

    # The victim's own request id on other bytes (the attacker's key): not a resend of the
    # victim's request, so not even its stored reply comes back; nothing is done, the attempt
    # is audited.
    assert await refused(attacker, forged, LoginSucceeded, victim_id) == (
        ErrorCode.REPLAYED_REQUEST
    )
    rows = await stored_audit(suite, audit_records.c.request_id == victim_id, expect=2)
    assert sorted(r["outcome"] for r in rows) == ["denied", "success"]


async def test_a_read_resent_byte_for_byte_is_refused_and_audited_not_answered_again(
    suite: Suite, identity_client: IdentityClient, requests_client: RequestClient
) -> None:
    subject_id, tag = await register(identity_client)
    token = await customer_token(identity_client, tag)
    victim_id, _ = await victim_read(identity_client, token, subject_id)
    _, record = await captured(suite, victim_id, ReadPersonalData)
    correlation = header(record, "correlation_id")

    await resend_raw(suite.kafka.bootstrap_servers, record)
    replies = await read_topic(
        suite.kafka.bootstrap_servers,
        requests_client.reply_topic,
        where=lambda r: header(r, "correlation_id") == correlation,
        expect=2,
        timeout_s=60,
    )
    assert [header(r, "ce_type") for r in replies] == [PersonalData.ce_type, ErrorReply.ce_type]
    assert ErrorReply.model_validate_json(replies[1].value or b"").code == (
        ErrorCode.REPLAYED_REQUEST
    )
    rows = await stored_audit(suite, audit_records.c.request_id == victim_id, expect=2)
    assert sorted(r["outcome"] for r in rows) == ["denied", "success"]


async def test_a_used_read_id_with_a_new_reply_key_is_refused_and_audited(
    suite: Suite, identity_client: IdentityClient, attacker: RequestClient
) -> None:
    subject_id, tag = await register(identity_client)
    token = await customer_token(identity_client, tag)
    victim_id, _ = await victim_read(identity_client, token, subject_id)
    original, _ = await captured(suite, victim_id, ReadPersonalData)
    _, reply_text = attacker_key()

    same = original.model_copy()
    assert await refused(attacker, same, PersonalData, victim_id) == ErrorCode.REPLAYED_REQUEST
    rekeyed = original.model_copy(update={"reply_key": reply_text})
    code = await refused(attacker, rekeyed, PersonalData, victim_id)
    assert code == ErrorCode.REPLAYED_REQUEST
    rows = await stored_audit(suite, audit_records.c.request_id == victim_id, expect=3)
    assert sorted(r["outcome"] for r in rows) == ["denied", "denied", "success"]


async def test_boxes_swapped_between_fields_of_one_update_are_refused_and_audited(
    suite: Suite, identity_client: IdentityClient, attacker: RequestClient
) -> None:
    """Rewritten in flight, before identity has seen it: the id is still fresh, the fields not."""
    subject_id, tag = await register(identity_client)
    token = await customer_token(identity_client, tag)
    request_id = str(uuid.uuid4())
    bound = identity_client.binding(UpdatePersonalData.ce_type, request_id, subject_id=subject_id)
    key = await identity_client.sealing_key()
    credentials = seal(Credentials(token=token).model_dump_json().encode(), key, bound)
    changes = seal(
        FieldChanges(values={"name": "Attacker"}).model_dump_json().encode(),
        key,
        identity_client.binding(
            UpdatePersonalData.ce_type, request_id, "sealed_changes", subject_id=subject_id
        ),
    )
    swapped = UpdatePersonalData(
        subject_id=subject_id, sealed_credentials=changes, sealed_changes=credentials
    )
    assert await refused(attacker, swapped, PersonalDataUpdated, request_id) in {
        ErrorCode.UNAUTHORISED,
        ErrorCode.MALFORMED,
    }
    await denied_audit(suite, request_id, "write")
    values = await identity_client.read(token, subject_id, ["name"])
    assert values["name"] != "Attacker"


async def test_an_old_box_after_its_window_is_refused_and_audited(
    suite: Suite, identity_client: IdentityClient, attacker: RequestClient
) -> None:
    """A request captured (never delivered) and sent after its window: stale, whatever else."""
    subject_id, tag = await register(identity_client)
    token = await customer_token(identity_client, tag)
    window = (
        suite.identity.settings.sealing.max_age_s + suite.identity.settings.sealing.clock_skew_s
    )
    request_id = str(uuid.uuid4())
    _, reply_text = attacker_key()
    bound = identity_client.binding(
        ReadPersonalData.ce_type, request_id, reply_key=reply_text, subject_id=subject_id
    )
    old = seal(
        Credentials(token=token).model_dump_json().encode(),
        await identity_client.sealing_key(),
        bound,
        iat=int(time.time()) - window - 5,
    )
    body = ReadPersonalData(
        subject_id=subject_id, fields=("name",), sealed_credentials=old, reply_key=reply_text
    )
    assert await refused(attacker, body, PersonalData, request_id) == ErrorCode.STALE_REQUEST
    await denied_audit(suite, request_id, "read")

    login_id = str(uuid.uuid4())
    login_bound = identity_client.binding(Login.ce_type, login_id, "sealed", reply_key=reply_text)
    fields = LoginFields(identifier=f"user_{tag}", password=PASSWORD, source="old")
    old_login = seal(
        fields.model_dump_json().encode(),
        await identity_client.sealing_key(),
        login_bound,
        iat=int(time.time()) - window - 5,
    )
    login = Login(sealed=old_login, reply_key=reply_text)
    assert await refused(attacker, login, LoginSucceeded, login_id) == ErrorCode.STALE_REQUEST
    await denied_audit(suite, login_id, "login")


async def test_a_login_box_opens_in_no_other_kind_of_request(
    suite: Suite, identity_client: IdentityClient, attacker: RequestClient
) -> None:
    _, tag = await register(identity_client)
    victim_id = str(uuid.uuid4())
    await identity_client.login(f"user_{tag}", PASSWORD, source="victim", request_id=victim_id)
    box = (await captured(suite, victim_id, Login))[0].sealed
    _, reply_text = attacker_key()
    for body, expect, action in (
        (StaffLogin(sealed=box, reply_key=reply_text), StaffLoginSucceeded, "login"),
        (StartRecovery(sealed=box, reply_key=reply_text), RecoveryChallenge, "recovery"),
        (AnswerRecovery(sealed=box), RecoveryCompleted, "recovery"),
        (RegisterUser(sealed=box), RegistrationAccepted, "create"),
    ):
        forged_id = str(uuid.uuid4())
        assert await refused(attacker, body, expect, forged_id) == ErrorCode.MALFORMED
        await denied_audit(suite, forged_id, action)


async def test_lifted_credentials_with_the_attackers_own_sealed_changes_change_nothing(
    suite: Suite, identity_client: IdentityClient, attacker: RequestClient
) -> None:
    """The attacker seals their own boxes properly (identity's key is public); only the victim's
    credentials are lifted. They belong to the victim's read, so nothing is written."""
    subject_id, tag = await register(identity_client, name="Original Name")
    token = await customer_token(identity_client, tag)
    victim_id, _ = await victim_read(identity_client, token, subject_id)
    credentials = (await captured(suite, victim_id, ReadPersonalData))[0].sealed_credentials

    forged_id = str(uuid.uuid4())
    own = identity_client.binding(
        UpdatePersonalData.ce_type, forged_id, "sealed_changes", subject_id=subject_id
    )
    changes = FieldChanges(values={"email": f"attacker.{tag}@example.test"})
    update = UpdatePersonalData(
        subject_id=subject_id,
        sealed_credentials=credentials,
        sealed_changes=seal(
            changes.model_dump_json().encode(), await identity_client.sealing_key(), own
        ),
    )
    assert await refused(attacker, update, PersonalDataUpdated, forged_id) == (
        ErrorCode.UNAUTHORISED
    )
    await denied_audit(suite, forged_id, "write")
    consent_id = str(uuid.uuid4())
    consent = RecordGuardianConsent(
        subject_id=subject_id, evidence_ref="case-1", sealed_credentials=credentials
    )
    assert await refused(attacker, consent, GuardianConsentRecorded, consent_id) == (
        ErrorCode.UNAUTHORISED
    )
    await denied_audit(suite, consent_id, "write")
    values = await identity_client.read(token, subject_id, ["email"])
    assert values == {"email": f"{tag}@example.test"}
