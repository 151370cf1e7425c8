"""An attacker's request whose id the inbox can't store still counts and is still audited.

Issue 8, part 2: eight wrong passwords sent with a 200+ character `ce_id` were answered but left no
failure count and no audit record, because the step's writes were rolled back with the inbox row
that couldn't hold the id. Here the requests go straight to identity's handlers, as a consumer that
let such an id through would hand them on, so the proof doesn't lean on envelope validation done
before: the lockout still engages, every attempt is audited, a copy of the request counts again,
and the right password is refused rather than answered with a session nobody could replay-check.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlalchemy import select

from moment_audit.adapters.orm import audit_records
from moment_client.client import RequestClient
from moment_client.identity import IdentityClient
from moment_contracts.base import Contract
from moment_contracts.envelope import CORRELATION_ID, REPLY_TO, Envelope
from moment_contracts.errors import ErrorCode, ErrorReply
from moment_contracts.identity import Login, LoginFields
from moment_contracts.recovery import AnswerRecovery, RecoveryAnswerFields
from moment_contracts.sealed import Binding, public_key_to_text
from moment_identity.adapters.orm import auth_throttle
from moment_identity.domain.lockout import account_key
from moment_identity.domain.normalise import username_key
from tests.identity.integration.test_login import PASSWORD, login_error, register
from tests.identity.integration.test_recovery import ANSWER, NEW_PASSWORD, answer_error, registered
from tests.support.audit_store import of, stored_audit
from tests.support.kafka import header, read_topic
from tests.support.suite import Suite

# Longer than the inbox's event_id column (128): the reply of such a request can't be stored.
LONG_ID = "x" * 300


async def direct(
    suite: Suite,
    requests: RequestClient,
    handler: Callable[[Envelope, Any], Awaitable[None]],
    body: Contract,
    request_id: str,
) -> ErrorReply | None:
    """Hand `body` to identity's handler as its consumer would; the reply it sent, if an error."""
    correlation = str(uuid.uuid4())
    extra = {CORRELATION_ID: correlation, REPLY_TO: requests.reply_topic}
    envelope = Envelope.of(body, source="/attacker", id=request_id, extra=extra)
    await handler(envelope, body)
    (reply,) = await read_topic(
        suite.kafka.bootstrap_servers,
        requests.reply_topic,
        where=lambda r: header(r, CORRELATION_ID) == correlation,
    )
    if header(reply, "ce_type") != ErrorReply.ce_type:
        return None
    return ErrorReply.model_validate_json(reply.value)


def bound(ce_type: str, request_id: str, reply_key: str = "") -> Binding:
    """The box binding of a request `direct` sends (source /attacker)."""
    return Binding(ce_type, request_id, "/attacker", "sealed", reply_key=reply_key)


async def login_body(
    client: IdentityClient, identifier: str, password: str, source: str, request_id: str
) -> Login:
    client.forget_sealing_key()  # an erasure elsewhere in the session may have rotated it
    fields = LoginFields(identifier=identifier, password=password, source=source)
    reply_key = public_key_to_text(X25519PrivateKey.generate().public_key())
    sealed = await client.seal_fields(fields, bound(Login.ce_type, request_id, reply_key))
    return Login(sealed=sealed, reply_key=reply_key)


async def answer_body(
    client: IdentityClient, identifier: str, answer: str, request_id: str
) -> AnswerRecovery:
    client.forget_sealing_key()
    fields = RecoveryAnswerFields(
        identifier=identifier, answer=answer, new_password=NEW_PASSWORD, source="recovery-src"
    )
    sealed = await client.seal_fields(fields, bound(AnswerRecovery.ce_type, request_id))
    return AnswerRecovery(sealed=sealed)


async def failures(suite: Suite, key: str) -> int:
    async with suite.identity.core.database.sessionmaker() as session:
        query = select(auth_throttle.c.failures).where(auth_throttle.c.key == key)
        return (await session.execute(query)).scalar_one_or_none() or 0


def index_of(suite: Suite, username: str) -> str:
    indexer = suite.identity.handlers().crypto.indexer
    return indexer.index("username", username_key(username))


async def test_wrong_passwords_under_an_unstorable_id_still_lock_the_account(
    suite: Suite, requests_client: RequestClient, identity_client: IdentityClient
) -> None:
    subject_id, tag = await register(identity_client)
    limit = suite.identity.settings.login.account_max_failures
    handler = suite.identity.handlers().login
    for attempt in range(limit):
        # The same request id every time: a copy of an unrecorded request is one more attempt.
        body = await login_body(
            identity_client, f"user_{tag}", f"wrong {attempt}", "long-id", LONG_ID
        )
        reply = await direct(suite, requests_client, handler, body, LONG_ID)
        assert reply is not None
        assert reply.code == ErrorCode.LOGIN_FAILED
    locked = await login_error(identity_client, f"user_{tag}", PASSWORD, "another-source")
    assert locked.code == ErrorCode.LOCKED_OUT
    rows = await stored_audit(suite, *of(subject_id, "login"), expect=limit + 1)
    outcomes = [r["outcome"] for r in rows]
    assert outcomes == ["failure"] * limit + ["denied"]
    assert all(r["request_id"].startswith("sha256:") for r in rows[:limit])
    assert LONG_ID not in str(rows)


async def test_the_right_password_under_an_unstorable_id_gets_no_session_and_is_audited(
    suite: Suite, requests_client: RequestClient, identity_client: IdentityClient
) -> None:
    _, tag = await register(identity_client)
    request_id = f"{uuid.uuid4()}{'y' * 200}"
    body = await login_body(identity_client, f"user_{tag}", PASSWORD, "long-id", request_id)
    reply = await direct(suite, requests_client, suite.identity.handlers().login, body, request_id)
    assert reply is not None
    assert reply.code == ErrorCode.MALFORMED
    rows = await stored_audit(
        suite,
        audit_records.c.action == "login",
        audit_records.c.request_id.like("sha256:%"),
        audit_records.c.subject_id == "unknown",
        audit_records.c.outcome == "failure",
    )
    assert rows, "the refused attempt left no audit record"


async def test_a_copy_of_a_recorded_failure_is_answered_from_the_inbox_and_counts_once(
    suite: Suite, requests_client: RequestClient, identity_client: IdentityClient
) -> None:
    _, tag = await register(identity_client)
    request_id = str(uuid.uuid4())
    body = await login_body(identity_client, f"user_{tag}", "wrong", "copied", request_id)
    handler = suite.identity.handlers().login
    first = await direct(suite, requests_client, handler, body, request_id)
    second = await direct(suite, requests_client, handler, body, request_id)
    assert first == second
    assert first is not None
    assert first.code == ErrorCode.LOGIN_FAILED
    assert await failures(suite, account_key(index_of(suite, f"user_{tag}"))) == 1


async def test_wrong_recovery_answers_under_an_unstorable_id_still_lock_recovery(
    suite: Suite, requests_client: RequestClient, identity_client: IdentityClient
) -> None:
    subject_id, tag = await registered(identity_client)
    limit = suite.identity.settings.login.account_max_failures
    handler = suite.identity.handlers().answer_recovery
    for attempt in range(limit):
        body = await answer_body(identity_client, f"user_{tag}", f"wrong answer {attempt}", LONG_ID)
        reply = await direct(suite, requests_client, handler, body, LONG_ID)
        assert reply is not None
        assert reply.code == ErrorCode.RECOVERY_FAILED
    locked = await answer_error(identity_client, f"user_{tag}", ANSWER)
    assert locked.code == ErrorCode.LOCKED_OUT
    rows = await stored_audit(suite, *of(subject_id, "recovery"), expect=limit + 1)
    assert [r["outcome"] for r in rows] == ["failure"] * limit + ["denied"]
