"""Every envelope attribute at its limit and one past it, on a login, a recovery answer and a
read, as an attacker with a Kafka client would send them. At the limit the request is processed
normally: answered, the attempt counted and audited. One past it, it is refused before any work:
a typed `malformed` reply (when the reply topic is well formed), a dead letter with the reason,
no counter change, and one audit record of the refused attempt (outcome `failure`, no subject)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from moment_audit.adapters.orm import audit_records
from moment_client.client import RequestClient
from moment_client.errors import ServiceError
from moment_client.identity import IdentityClient
from moment_contracts import topics
from moment_contracts.envelope import CORRELATION_ID, REPLY_TO, EnvelopeLimits
from moment_contracts.errors import ErrorCode
from moment_contracts.identity import Login
from moment_contracts.profile import ReadPersonalData
from moment_contracts.recovery import AnswerRecovery
from moment_identity.adapters.orm import auth_throttle
from moment_identity.service.unit_of_work import request_ref
from tests.identity.integration.test_login import register
from tests.identity.integration.test_reads import customer_token
from tests.identity.integration.test_recovery import registered
from tests.support.audit_store import stored_audit
from tests.support.kafka import header, read_topic
from tests.support.suite import Suite

L = EnvelopeLimits
# header -> its longest accepted value (one more character is past the limit). ce_id is set by
# the client's request id, so whatever binds a sealed box to its request still holds.
AT_LIMIT: dict[str, str] = {
    "ce_id": "i" * L.ID_CHARS,
    "ce_source": "/" + "s" * (L.SOURCE_CHARS - 1),
    "ce_subject": "s" * L.ID_CHARS,
    "ce_dataschema": "urn:" + "d" * (L.DATASCHEMA_CHARS - 4),
    "ce_time": "2026-11-26T10:00:01.123456+00:00",
    CORRELATION_ID: "c" * L.ID_CHARS,
    REPLY_TO: "replies." + "r" * (L.TOPIC_CHARS - 8),
    "traceparent": "0" * L.TRACEPARENT_CHARS,
    "tracestate": "k=" + "v" * (L.TRACESTATE_CHARS - 2),
    "content-type": "application/json;" + "x" * (L.CONTENT_TYPE_CHARS - 17),
    "x-extension": "e" * L.MAX_HEADER_VALUE_BYTES,
}
PAST_ONLY: dict[str, str] = {
    "ce_type": "t" * (L.TYPE_CHARS + 1),
    "ce_specversion": "0.3",
}


@contextlib.contextmanager
def tampered(requests: RequestClient, ce_type: str, changes: dict[str, str]) -> Any:
    """The client's next `ce_type` request leaves with `changes` in its headers; a changed
    correlation id still finds the waiting call."""
    producer = requests._producer
    assert producer is not None
    original = producer.send_and_wait
    # A box is bound to its request's source: the client seals for the source it will send.
    source = requests.config.source
    if "ce_source" in changes:
        requests.config.source = changes["ce_source"]

    async def send(topic: str, value: bytes, *, key: Any = None, headers: Any = ()) -> Any:
        found = dict(headers)
        if found.get("ce_type") == ce_type.encode():
            replaced = {**found, **{n: v.encode() for n, v in changes.items()}}
            if CORRELATION_ID in changes:
                old = found[CORRELATION_ID].decode()
                requests._pending[changes[CORRELATION_ID]] = requests._pending[old]
            headers = list(replaced.items())
        return await original(topic, value, key=key, headers=headers)

    producer.send_and_wait = send
    try:
        yield
    finally:
        producer.send_and_wait = original
        requests.config.source = source


async def _failures(suite: Suite) -> int:
    async with suite.identity.core.database.sessionmaker() as session:
        total = await session.scalar(select(func.coalesce(func.sum(auth_throttle.c.failures), 0)))
    return int(total or 0)


async def _audited(suite: Suite, request_id: str) -> list[dict[str, Any]]:
    return await stored_audit(suite, audit_records.c.request_id == request_id, expect=1)


Attempt = Callable[[str], Awaitable[Any]]


async def _flow(flow: str, client: IdentityClient) -> tuple[str, Attempt, bool]:
    """(the request's ce_type, one failing attempt by request id, whether it is throttled).
    A source of its own, so that only this test's attempts move its counters."""
    source = f"limits-{uuid.uuid4().hex[:8]}"
    if flow == "login":
        _, tag = await register(client)
        return (
            Login.ce_type,
            lambda rid: client.login(f"user_{tag}", "wrong", source=source, request_id=rid),
            True,
        )
    if flow == "recovery":
        _, tag = await registered(client)
        return (
            AnswerRecovery.ce_type,
            lambda rid: client.answer_recovery(
                f"user_{tag}", "wrong", "a brand new passphrase", source=source, request_id=rid
            ),
            True,
        )
    other, _ = await register(client)
    _, tag = await register(client)
    token = await customer_token(client, tag)
    return (
        ReadPersonalData.ce_type,
        lambda rid: client.read(token, other, ["name"], request_id=rid),
        False,
    )


async def _outcome(call: Awaitable[Any]) -> str:
    try:
        await call
    except ServiceError as exc:
        return str(exc.code)
    return "ok"


FLOWS = ["login", "recovery", "read"]


@pytest.mark.parametrize("name", list(AT_LIMIT))
@pytest.mark.parametrize("flow", FLOWS)
async def test_each_attribute_at_its_limit_is_processed_counted_and_audited(
    suite: Suite,
    identity_client: IdentityClient,
    requests_client: RequestClient,
    flow: str,
    name: str,
) -> None:
    ce_type, attempt, throttled = await _flow(flow, identity_client)
    request_id = AT_LIMIT["ce_id"] if name == "ce_id" else str(uuid.uuid4())
    if name == "ce_id":
        request_id = request_id[:-8] + uuid.uuid4().hex[:8]
    changes = {} if name == "ce_id" else {name: AT_LIMIT[name]}
    before = await _failures(suite)
    expected = {"login": "login-failed", "recovery": "recovery-failed", "read": "access-denied"}
    with tampered(requests_client, ce_type, changes):
        if name == REPLY_TO:
            # Processed; the reply goes where the request said (if the Replier's own rules let
            # it), never back to this client.
            task = asyncio.ensure_future(attempt(request_id))
            await _audited(suite, request_id)
            task.cancel()
        else:
            assert await _outcome(attempt(request_id)) == expected[flow]
    rows = await _audited(suite, request_id)
    assert [r["outcome"] for r in rows] in (["failure"], ["denied"])
    if throttled:
        assert await _failures(suite) > before


async def _dead_letter(suite: Suite, request_id: str) -> Any:
    dead = await read_topic(
        suite.kafka.bootstrap_servers,
        topics.dlq(topics.IDENTITY_COMMANDS),
        where=lambda r: header(r, "ce_id") == request_id or header(r, "x-probe") == request_id,
        timeout_s=60,
    )
    assert dead, "the refused request was dead-lettered"
    return dead[0]


@pytest.mark.parametrize("name", [*AT_LIMIT, *PAST_ONLY])
@pytest.mark.parametrize("flow", FLOWS)
async def test_each_attribute_past_its_limit_is_refused_before_any_work(
    suite: Suite,
    identity_client: IdentityClient,
    requests_client: RequestClient,
    flow: str,
    name: str,
) -> None:
    ce_type, attempt, throttled = await _flow(flow, identity_client)
    request_id = str(uuid.uuid4())
    value = PAST_ONLY.get(name) or AT_LIMIT[name] + "x"
    if name == "ce_id":  # unique, so this attempt's audit record is told from the other flows'
        value = value[:-33] + uuid.uuid4().hex + "x"
    changes = {name: value, "x-probe": request_id}
    before = await _failures(suite)
    with tampered(requests_client, ce_type, changes):
        task = asyncio.ensure_future(_outcome(attempt(request_id)))
        record = await _dead_letter(suite, request_id)
        if name in (REPLY_TO, CORRELATION_ID):
            task.cancel()  # no answer can reach a malformed reply topic or correlation id
        elif name in ("ce_id", "ce_type"):
            # Changed under the client, after it sealed: identity's reply MAC answers for the id
            # and type it received, so the client rightly can't take that reply as its own.
            task.cancel()
        else:
            assert await task == ErrorCode.MALFORMED
    assert header(record, "dlq_reason") in {"malformed", "unknown-type"}
    assert value not in (header(record, "dlq_detail") or "")
    assert await _failures(suite) == before, "no counter moved"
    # The same request within the limits is processed, and is the only attempt on record.
    follow_up = str(uuid.uuid4())
    await _outcome(attempt(follow_up))
    assert await _audited(suite, follow_up)
    # The refused attempt is on record as refused, before any work: no subject was established.
    # A type past its limit names no action on personal data, so there is nothing to audit.
    if name == "ce_type":
        assert await stored_audit(suite, audit_records.c.request_id == request_id, attempts=1) == []
    else:
        ref = request_ref(value) if name == "ce_id" else request_id
        (refused,) = await stored_audit(suite, audit_records.c.request_id == ref, expect=1)
        assert (refused["outcome"], refused["subject_id"]) == ("failure", "unknown")
    if throttled:
        assert await _failures(suite) > before
