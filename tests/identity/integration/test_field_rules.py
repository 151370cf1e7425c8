"""The shared field rules through the running suite, with plaintexts a real client would never seal.

The storefront client's own models refuse most of these before sending, so each box is sealed by
hand, as an attacker with identity's public key would. Issue 8, part 5: registration took
zero-width names, NUL, ages of "30", 30.0 and true (the last made an adult a minor) and a
250-character domain label; rectification took a 10 kB name and answered `internal` for "²".
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import replace
from typing import Any

import pytest

from moment_client.client import RequestClient
from moment_client.errors import ServiceError
from moment_client.identity import IdentityClient, new_request_id
from moment_contracts import topics
from moment_contracts.errors import ErrorCode, ErrorReply
from moment_contracts.identity import RegisterUser, RegistrationAccepted
from moment_contracts.profile import PersonalDataUpdated, UpdatePersonalData
from moment_contracts.sealed import seal
from moment_identity.domain.fields import NAME_MAX, text_problem
from tests.identity.integration.test_login import register
from tests.identity.integration.test_reads import customer_token
from tests.identity.integration.test_registration import fields
from tests.support.audit_store import of, stored_audit
from tests.support.suite import Suite

# A few generated strings (seeded, so a failure repeats): code points from every plane.
_RANDOM = random.Random(8)
GENERATED = [
    "".join(
        chr(_RANDOM.choice([_RANDOM.randrange(0x20, 0x3000), _RANDOM.randrange(0x10000, 0x2FFFF)]))
        for _ in range(n)
    )
    for n in (1, 7, 40)
]


def field_codes(reply: ErrorReply) -> set[tuple[str, str]]:
    return {(f.field, f.code) for f in reply.fields}


async def register_raw(
    requests: RequestClient, client: IdentityClient, body: dict[str, Any]
) -> RegistrationAccepted:
    client.forget_sealing_key()  # an erasure elsewhere in the session may have rotated it
    request_id = new_request_id()
    bound = client.binding(RegisterUser.ce_type, request_id, "sealed")
    sealed = seal(json.dumps(body).encode(), await client.sealing_key(), bound)
    return await requests.request(
        topics.IDENTITY_COMMANDS,
        RegisterUser(sealed=sealed),
        RegistrationAccepted,
        request_id=request_id,
    )


async def update_raw(
    requests: RequestClient, client: IdentityClient, token: str, subject_id: str, raw: str
) -> PersonalDataUpdated:
    client.forget_sealing_key()
    request_id = new_request_id()
    bound = client.binding(UpdatePersonalData.ce_type, request_id, subject_id=subject_id)
    request = UpdatePersonalData(
        subject_id=subject_id,
        sealed_credentials=await client.seal_credentials(token, bound),
        sealed_changes=seal(
            raw.encode(), await client.sealing_key(), replace(bound, field="sealed_changes")
        ),
    )
    return await requests.request(
        topics.IDENTITY_COMMANDS, request, PersonalDataUpdated, request_id=request_id
    )


def registration_body(**overrides: Any) -> dict[str, Any]:
    return {**fields(uuid.uuid4().hex[:10]).model_dump(), **overrides}


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"name": "\u200b\u200c\u200d"}, ("name", "required")),
        ({"name": "\x00"}, ("name", "control")),
        ({"username": "\u200b\u200b\u200b\u200b"}, ("username", "length")),
        ({"age": "30"}, ("age", "type")),
        ({"age": 30.0}, ("age", "type")),
        ({"age": True}, ("age", "type")),
        ({"email": f"a@{'x' * 249}.co"}, ("email", "format")),  # a 249-character label
        ({"email": "a\x00b@example.test"}, ("email", "control")),
        ({"evil": "x"}, ("fields", "unknown")),
    ],
)
async def test_registration_refuses_what_it_once_took(
    requests_client: RequestClient,
    identity_client: IdentityClient,
    overrides: dict[str, Any],
    expected: tuple[str, str],
) -> None:
    with pytest.raises(ServiceError) as caught:
        await register_raw(requests_client, identity_client, registration_body(**overrides))
    reply = caught.value.reply
    assert reply.code == ErrorCode.VALIDATION_FAILED
    assert field_codes(reply) == {expected}
    assert all(f.message_en and f.message_ar for f in reply.fields)
    assert "\x00" not in reply.model_dump_json()


@pytest.mark.parametrize("value", GENERATED)
async def test_generated_names_are_taken_or_refused_by_field(
    requests_client: RequestClient, identity_client: IdentityClient, value: str
) -> None:
    """The running service agrees with the rule the unit property tests attack."""
    code = text_problem(value, NAME_MAX)
    body = registration_body(name=value)
    if code is None:
        accepted = await register_raw(requests_client, identity_client, body)
        assert accepted.status == "active"
        return
    with pytest.raises(ServiceError) as caught:
        await register_raw(requests_client, identity_client, body)
    assert field_codes(caught.value.reply) == {("name", code)}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"age": "²"}, ("age", "format")),
        ({"age": "٣٠"}, ("age", "format")),
        ({"age": 30}, ("age", "type")),
        ({"name": "n" * 10_000}, ("name", "length")),
        ({"name": "\u2060\ufeff"}, ("name", "required")),
        ({"email": f"a@{'x' * 64}.test"}, ("email", "format")),
    ],
)
async def test_rectification_follows_the_same_rules(
    suite: Suite,
    requests_client: RequestClient,
    identity_client: IdentityClient,
    changes: dict[str, Any],
    expected: tuple[str, str],
) -> None:
    subject_id, tag = await register(identity_client)
    token = await customer_token(identity_client, tag)
    raw = json.dumps({"values": changes})
    with pytest.raises(ServiceError) as caught:
        await update_raw(requests_client, identity_client, token, subject_id, raw)
    assert caught.value.code == ErrorCode.VALIDATION_FAILED
    assert field_codes(caught.value.reply) == {expected}
    if expected[1] not in {"type", "length"}:
        # Refused by the rules after the caller was known: audited against the subject.
        rows = await stored_audit(suite, *of(subject_id, "write"))
        assert [(r["outcome"], r["fields"]) for r in rows] == [("failure", [expected[0]])]


async def test_a_valid_rectified_age_is_stored_as_given(
    requests_client: RequestClient, identity_client: IdentityClient
) -> None:
    subject_id, tag = await register(identity_client)
    token = await customer_token(identity_client, tag)
    raw = json.dumps({"values": {"age": "45"}})
    await update_raw(requests_client, identity_client, token, subject_id, raw)
    assert await identity_client.read(token, subject_id, ["age"]) == {"age": "45"}
