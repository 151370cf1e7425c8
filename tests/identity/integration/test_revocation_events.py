"""Identity announces every end of a principal's sessions on identity.events, so services that
verify tokens offline refuse them (audit's feed: tests/audit/integration/test_revocations.py).

Lockout, recovery and staff deactivation have their own tests (test_login, test_recovery,
test_principals); here: erasure, and a staff account's lockout.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from moment_auth.principals import Role
from moment_client.audit import AuditClient
from moment_client.client import RequestClient
from moment_client.errors import ServiceError
from moment_client.identity import IdentityClient
from moment_contracts import topics
from moment_contracts.errors import ErrorCode
from moment_contracts.principals import PrincipalTokensRevoked
from moment_contracts.profile import SubjectErased
from moment_identity.adapters.orm import staff_accounts
from tests.audit.integration.test_revocations import refused_after
from tests.identity.integration.test_login import register
from tests.identity.integration.test_principals import new_staff, staff_error
from tests.identity.integration.test_reads import customer_token
from tests.support.kafka import header, read_topic
from tests.support.suite import Suite


async def _events_about(suite: Suite, principal_id: str, expect: int) -> list[tuple[str, bytes]]:
    records = await read_topic(
        suite.kafka.bootstrap_servers,
        topics.IDENTITY_EVENTS,
        expect=expect,
        where=lambda r: header(r, "ce_subject") == principal_id,
    )
    matching = [r for r in records if header(r, "ce_subject") == principal_id]
    return [(header(r, "ce_type") or "", r.value or b"") for r in matching]


async def test_erasure_revokes_the_subject_s_tokens_before_announcing_the_erasure(
    suite: Suite, identity_client: IdentityClient
) -> None:
    subject_id, tag = await register(identity_client)
    token = await customer_token(identity_client, tag)
    await identity_client.erase(token, subject_id)
    events = await _events_about(suite, subject_id, expect=3)
    types = [ce_type for ce_type, _ in events]
    revoked = types.index(PrincipalTokensRevoked.ce_type)
    # One partition per subject: a consumer sees the revocation no later than the erasure.
    assert revoked < types.index(SubjectErased.ce_type)
    event = PrincipalTokensRevoked.model_validate_json(events[revoked][1])
    assert event == PrincipalTokensRevoked(principal_id=subject_id, min_session_version=1)
    with pytest.raises(ServiceError) as caught:
        await identity_client.read(token, subject_id, ["name"])
    assert caught.value.code == ErrorCode.UNAUTHORISED


async def test_a_staff_lockout_ends_the_staff_member_s_sessions_everywhere(
    suite: Suite, identity_client: IdentityClient, requests_client: RequestClient
) -> None:
    staff_id, username, password = await new_staff(suite, Role.SECURITY_ANALYST)
    _, _, session = await identity_client.staff_login(username, password, source="desk-lock")
    audit = AuditClient(requests_client)
    assert await audit.access_history(session.token, subject_id="anyone") == ()
    for attempt in range(suite.identity.settings.login.account_max_failures):
        await staff_error(identity_client, username, f"wrong {attempt}", f"lock-{attempt}")
    events = await _events_about(suite, staff_id, expect=1)
    assert [PrincipalTokensRevoked.model_validate_json(body) for _, body in events] == [
        PrincipalTokensRevoked(principal_id=staff_id, min_session_version=1)
    ]
    assert await refused_after(audit, session.token, "anyone") < 30


async def test_failures_below_the_limit_end_no_session(
    suite: Suite, identity_client: IdentityClient, requests_client: RequestClient
) -> None:
    staff_id, username, password = await new_staff(suite, Role.SECURITY_ANALYST)
    _, _, session = await identity_client.staff_login(username, password, source="desk-ok")
    for attempt in range(suite.identity.settings.login.account_max_failures - 1):
        await staff_error(identity_client, username, f"wrong {attempt}", f"few-{attempt}")
    # The account still works, and so does the session it already had.
    await identity_client.staff_login(username, password, source="desk-ok")
    assert await AuditClient(requests_client).access_history(session.token, subject_id="x") == ()
    async with suite.identity.core.database.sessionmaker() as db:
        version = await db.scalar(
            select(staff_accounts.c.session_version).where(staff_accounts.c.staff_id == staff_id)
        )
    assert version == 0
