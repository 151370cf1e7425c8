"""Every attempt on personal data leaves an audit record, refusals included (issue 8, part 5).

68 attempts once left none: updates that failed validation or hit a conflict, and requests with an
over-long `ce_id`. Here each kind of refusal is provoked as an attacker would, and its record is
found by the request id it was sent with: refusals raised before any step (a bad token, fields
that break the contract), in a step (a conflict), and before any handler (a body that breaks the
schema, dead-lettered). The record never holds a value, nor the attacker's own id when that is
not a short visible string.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import pytest

from moment_audit.adapters.orm import audit_records
from moment_client.client import RequestClient
from moment_client.errors import ServiceError
from moment_client.identity import IdentityClient
from moment_contracts import topics
from moment_contracts.envelope import Envelope
from moment_contracts.errors import ErrorCode
from moment_contracts.identity import Login
from moment_contracts.profile import FieldChanges, PersonalDataUpdated, UpdatePersonalData
from moment_identity.service.unit_of_work import request_ref
from tests.identity.integration.test_login import PASSWORD, register
from tests.identity.integration.test_reads import customer_token
from tests.identity.integration.test_registration import fields
from tests.support.audit_store import stored_audit
from tests.support.produce import publish
from tests.support.suite import Suite


async def audit_of(suite: Suite, request_id: str) -> dict[str, Any]:
    rows = await stored_audit(suite, audit_records.c.request_id == request_ref(request_id))
    assert len(rows) == 1, f"expected one audit record of {request_id[:40]}, found {len(rows)}"
    return rows[0]


async def test_a_registration_refused_by_the_rules_is_audited(
    suite: Suite, identity_client: IdentityClient
) -> None:
    request_id = str(uuid.uuid4())
    bad = fields(uuid.uuid4().hex[:8], email="not-an-email")
    with pytest.raises(ServiceError):
        await identity_client.register(bad, request_id=request_id)
    row = await audit_of(suite, request_id)
    assert (row["action"], row["outcome"], row["fields"]) == ("create", "failure", ["email"])
    assert "not-an-email" not in str(row)


async def test_a_read_with_a_forged_token_is_audited_as_denied(
    suite: Suite, identity_client: IdentityClient
) -> None:
    subject_id, _ = await register(identity_client)
    request_id = str(uuid.uuid4())
    with pytest.raises(ServiceError) as caught:
        await identity_client.read("a.forged.token", subject_id, ["name"], request_id=request_id)
    assert caught.value.code == ErrorCode.UNAUTHORISED
    row = await audit_of(suite, request_id)
    assert (row["action"], row["outcome"]) == ("read", "denied")


async def test_a_rectification_that_hits_a_conflict_is_audited(
    suite: Suite, requests_client: RequestClient, identity_client: IdentityClient
) -> None:
    subject_id, tag = await register(identity_client)
    _, other = await register(identity_client)
    token = await customer_token(identity_client, tag)
    identity_client.forget_sealing_key()
    request_id = str(uuid.uuid4())
    bound = identity_client.binding(UpdatePersonalData.ce_type, request_id, subject_id=subject_id)
    changes = FieldChanges(values={"username": f"user_{other}"})
    request = UpdatePersonalData(
        subject_id=subject_id,
        sealed_credentials=await identity_client.seal_credentials(token, bound),
        sealed_changes=await identity_client.seal_fields(
            changes, replace(bound, field="sealed_changes")
        ),
    )
    with pytest.raises(ServiceError) as caught:
        await requests_client.request(
            topics.IDENTITY_COMMANDS, request, PersonalDataUpdated, request_id=request_id
        )
    assert caught.value.code == ErrorCode.CONFLICT
    row = await audit_of(suite, request_id)
    assert (row["action"], row["outcome"]) == ("write", "failure")
    assert (row["subject_id"], row["actor_id"], row["fields"]) == (
        subject_id,
        subject_id,
        ["username"],
    )
    assert other not in str(row)


@pytest.mark.parametrize(
    "data",
    [b"{}", b"not json at all", b'{"sealed": 1, "reply_key": []}'],
    ids=["schema", "parser", "types"],
)
async def test_a_request_dead_lettered_before_any_handler_is_audited(
    suite: Suite, data: bytes
) -> None:
    request_id = str(uuid.uuid4())
    poison = Envelope(type=Login.ce_type, source="/attacker", id=request_id, data=data)
    await publish(suite.kafka.bootstrap_servers, topics.IDENTITY_COMMANDS, poison)
    row = await audit_of(suite, request_id)
    assert (row["action"], row["outcome"], row["subject_id"]) == ("login", "failure", "unknown")


async def test_a_login_with_an_over_long_id_is_audited_under_its_digest(
    suite: Suite, identity_client: IdentityClient
) -> None:
    _, tag = await register(identity_client)
    request_id = f"{uuid.uuid4()}{'z' * 250}"
    with pytest.raises(ServiceError):
        await identity_client.login(
            f"user_{tag}", f"not {PASSWORD}", source="long-id", request_id=request_id
        )
    # Refused before any work once envelopes are validated, or counted as a failure: audited.
    row = await audit_of(suite, request_id)
    assert row["action"] == "login"
    assert row["outcome"] in {"failure", "denied"}
    assert row["request_id"].startswith("sha256:")
