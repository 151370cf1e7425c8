"""An attacker who reads identity.commands and writes to a client's reply topic answers the
client's requests before identity does: a session of the attacker's own account, false personal
data, an error. Only a reply whose MAC proves it is identity's answer to that very request is
taken; the forged ones are dropped, and the real reply that follows is delivered."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from aiokafka.structs import ConsumerRecord

from moment_audit.adapters.orm import audit_records
from moment_client.client import RequestClient
from moment_client.errors import ServiceError
from moment_client.identity import IdentityClient, one_time_key
from moment_contracts import topics
from moment_contracts.base import Contract
from moment_contracts.envelope import CORRELATION_ID, REPLY_TO, Envelope, from_kafka
from moment_contracts.errors import ErrorCode, ErrorReply
from moment_contracts.identity import Login, LoginFields, LoginSucceeded, Session
from moment_contracts.profile import (
    ErasePersonalData,
    PersonalData,
    PersonalDataValues,
    ReadPersonalData,
)
from moment_contracts.reply_mac import REPLY_KID, REPLY_MAC
from moment_contracts.sealed import public_key_from_text, seal
from moment_identity.adapters.reply_macs import ReplyMacs
from tests.identity.integration.test_login import PASSWORD, register
from tests.identity.integration.test_reads import customer_token
from tests.support.audit_store import stored_audit
from tests.support.kafka import header, read_topic
from tests.support.produce import publish
from tests.support.suite import Suite

M = TypeVar("M", bound=Contract)
R = TypeVar("R")
DEADLINE_S = 60.0


class Held:
    """Identity's replies to the requests in `ids` are sent only once `gate` is set."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.gate = asyncio.Event()
        self.sending: list[asyncio.Future[bool]] = []


@pytest.fixture
async def held(suite: Suite) -> AsyncIterator[Held]:
    """So the attacker's forgery surely arrives before identity's answer. The reply is held
    aside, not in the handler: identity goes on serving other requests (the client's
    GetSealingKey) meanwhile."""
    replier = suite.identity.core.replier
    holding = Held()
    send = replier.send_envelope

    async def later(request: Envelope, reply: Envelope) -> bool:
        await asyncio.wait_for(holding.gate.wait(), DEADLINE_S)
        return await send(request, reply)

    async def held_send(request: Envelope, reply: Envelope) -> bool:
        if request.id not in holding.ids:
            return await send(request, reply)
        holding.sending.append(asyncio.ensure_future(later(request, reply)))
        return True

    replier.send_envelope = held_send  # type: ignore[method-assign]
    try:
        yield holding
    finally:
        holding.gate.set()
        del replier.send_envelope
        await asyncio.gather(*holding.sending, return_exceptions=True)


async def request_on_the_wire(suite: Suite, request_id: str, model: type[M]) -> tuple[M, Envelope]:
    """The victim's request as the attacker sees it on identity.commands."""
    records = await read_topic(
        suite.kafka.bootstrap_servers,
        topics.IDENTITY_COMMANDS,
        where=lambda r: header(r, "ce_id") == request_id,
        timeout_s=DEADLINE_S,
    )
    assert records, "the victim's request is not on identity.commands"
    envelope = from_kafka(records[0].headers, records[0].value or b"")
    return model.model_validate_json(envelope.data), envelope


async def answer_first(suite: Suite, request: Envelope, reply: Envelope) -> None:
    """Write `reply` to the request's reply topic under its correlation id."""
    extra = {**reply.extra, CORRELATION_ID: request.extra[CORRELATION_ID]}
    forged = Envelope(
        type=reply.type, source="/identity", data=reply.data, subject=reply.subject, extra=extra
    )
    await publish(suite.kafka.bootstrap_servers, request.extra[REPLY_TO], forged)


async def refused_replies(client: RequestClient, before: int, expect: int = 1) -> None:
    assert client.replies is not None
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    while client.replies.dropped["unauthenticated"] < before + expect:
        assert asyncio.get_running_loop().time() < deadline, "the forged reply never arrived"
        await asyncio.sleep(0.05)


def dropped(client: RequestClient) -> int:
    assert client.replies is not None
    return client.replies.dropped["unauthenticated"]


def forged_macs(suite: Suite) -> dict[str, str]:
    """A MAC header of the right shape, naming identity's current key."""
    kid = suite.identity.handlers().crypto.opener.public_key().kid
    return {REPLY_MAC: "A" * 43, REPLY_KID: kid}


async def forged_before_identity(
    suite: Suite,
    requests_client: RequestClient,
    held: Held,
    call: Awaitable[R],
    request_id: str,
    model: type[Contract],
    forge: Callable[[Any], Envelope],
    forgeries: int = 1,
) -> R:
    """Run the victim's `call`; answer it with `forge(request body)` while identity's reply is
    held; then let identity answer, and return what the victim got."""
    held.ids.add(request_id)
    before = dropped(requests_client)
    victim = asyncio.ensure_future(call)
    body, request = await request_on_the_wire(suite, request_id, model)
    for _ in range(forgeries):
        await answer_first(suite, request, forge(body))
    await refused_replies(requests_client, before, forgeries)
    assert not victim.done(), "a forged reply answered the request"
    held.gate.set()
    return await asyncio.wait_for(victim, DEADLINE_S)


async def test_a_forged_login_session_is_dropped_and_the_real_one_delivered(
    suite: Suite,
    identity_client: IdentityClient,
    requests_client: RequestClient,
    held: Held,
) -> None:
    """The attacker's own session, sealed to the victim's public reply key: the victim would use
    the attacker's account and type personal data into it."""
    victim_id, victim_tag = await register(identity_client)
    attacker_id = f"attacker-{uuid.uuid4()}"
    attacker_token = f"attacker-token-{uuid.uuid4()}"

    def forge(body: Login) -> Envelope:
        session = Session(token=attacker_token, expires_at=datetime.now(UTC) + timedelta(hours=1))
        sealed = seal(
            session.model_dump_json().encode(),
            public_key_from_text(body.reply_key),
            LoginSucceeded.ce_type,
        )
        reply = LoginSucceeded(subject_id=attacker_id, sealed_session=sealed)
        return Envelope.of(reply, source="/identity", extra=forged_macs(suite))

    request_id = str(uuid.uuid4())
    call = identity_client.login(
        f"user_{victim_tag}", PASSWORD, source="198.51.100.7", request_id=request_id
    )
    subject_id, session = await forged_before_identity(
        suite, requests_client, held, call, request_id, Login, forge, forgeries=2
    )
    assert subject_id == victim_id
    assert session.token != attacker_token


async def test_a_forged_read_reply_and_a_forged_error_are_dropped(
    suite: Suite,
    identity_client: IdentityClient,
    requests_client: RequestClient,
    held: Held,
) -> None:
    subject_id, tag = await register(identity_client, name="Real Name")
    token = await customer_token(identity_client, tag)

    def forge(body: ReadPersonalData) -> Envelope:
        values = PersonalDataValues(values={"name": "False Name"}).model_dump_json().encode()
        sealed = seal(values, public_key_from_text(body.reply_key), PersonalData.ce_type)
        reply = PersonalData(
            subject_id=subject_id, fields=("name",), sealed_values=sealed, read_at=datetime.now(UTC)
        )
        return Envelope.of(reply, source="/identity", extra=forged_macs(suite))

    def forge_error(_body: ReadPersonalData) -> Envelope:
        # No MAC at all, as a client that never checked would accept.
        return Envelope.of(ErrorReply.of(ErrorCode.ACCESS_DENIED), source="/identity")

    def forge_unknown_key(body: ReadPersonalData) -> Envelope:
        # Naming a key the client doesn't know: it fetches identity's current key, then drops it.
        forged = forge(body)
        extra = {REPLY_MAC: "A" * 43, REPLY_KID: "0123456789abcdef"}
        return Envelope(type=forged.type, source=forged.source, data=forged.data, extra=extra)

    for forger in (forge, forge_error, forge_unknown_key):
        held.gate.clear()
        request_id = str(uuid.uuid4())
        call = identity_client.read(token, subject_id, ["name"], request_id=request_id)
        values = await forged_before_identity(
            suite, requests_client, held, call, request_id, ReadPersonalData, forger
        )
        assert values == {"name": "Real Name"}


async def test_an_erasure_reply_made_with_the_rotated_key_is_taken(
    suite: Suite, identity_client: IdentityClient
) -> None:
    """Erasure rotates the key the request was sealed to away before the reply is sent: the MAC
    is made with the new key, which the client fetches (endorsed) to check it."""
    subject_id, tag = await register(identity_client)
    token = await customer_token(identity_client, tag)
    request_id = str(uuid.uuid4())
    await identity_client.erase(token, subject_id, request_id=request_id)
    body, request = await request_on_the_wire(suite, request_id, ErasePersonalData)
    reply = await reply_record(suite, request.extra[REPLY_TO], request.extra[CORRELATION_ID])
    assert header(reply, REPLY_MAC)
    assert header(reply, REPLY_KID) != body.sealed_credentials.kid


async def genuine_reply(suite: Suite, request: Envelope, reply: Contract) -> Envelope:
    """What identity itself would send for `request`: its MAC is genuine."""
    envelope = Envelope.of(reply, source="/identity")
    macs = ReplyMacs(suite.identity.handlers().crypto.opener)
    extra = macs.headers(request, envelope, request.extra[CORRELATION_ID])
    assert extra, "identity makes no MAC for this request"
    return Envelope.of(reply, source="/identity", extra=extra)


async def test_a_genuine_reply_with_its_body_altered_is_refused(
    suite: Suite,
    identity_client: IdentityClient,
    requests_client: RequestClient,
    held: Held,
) -> None:
    subject_id, tag = await register(identity_client, name="Real Name")
    token = await customer_token(identity_client, tag)
    request_id = str(uuid.uuid4())
    held.ids.add(request_id)
    before = dropped(requests_client)
    victim = asyncio.ensure_future(
        identity_client.read(token, subject_id, ["name"], request_id=request_id)
    )
    body, request = await request_on_the_wire(suite, request_id, ReadPersonalData)
    values = PersonalDataValues(values={"name": "False Name"}).model_dump_json().encode()
    sealed = seal(values, public_key_from_text(body.reply_key), PersonalData.ce_type)
    reply = PersonalData(
        subject_id=subject_id, fields=("name",), sealed_values=sealed, read_at=datetime.now(UTC)
    )
    genuine = await genuine_reply(suite, request, reply)
    altered = Envelope(
        type=genuine.type,
        source=genuine.source,
        data=genuine.data.replace(b'"name"', b'"email"', 1),
        extra=genuine.extra,
    )
    # The same MAC on another reply type, then on the altered body.
    retyped = Envelope(
        type=ErrorReply.ce_type,
        source=genuine.source,
        data=ErrorReply.of(ErrorCode.ACCESS_DENIED).model_dump_json().encode(),
        extra=genuine.extra,
    )
    for forged in (altered, retyped):
        await answer_first(suite, request, forged)
    await refused_replies(requests_client, before, 2)
    assert not victim.done()
    held.gate.set()
    assert await asyncio.wait_for(victim, DEADLINE_S) == {"name": "Real Name"}


async def reply_record(
    suite: Suite, reply_topic: str, correlation_id: str
) -> ConsumerRecord[bytes, bytes]:
    records = await read_topic(
        suite.kafka.bootstrap_servers,
        reply_topic,
        where=lambda r: header(r, CORRELATION_ID) == correlation_id,
        timeout_s=DEADLINE_S,
    )
    assert records, "identity's reply is not on the reply topic"
    return records[0]


async def test_a_mac_copied_from_another_reply_is_refused(
    suite: Suite,
    identity_client: IdentityClient,
    requests_client: RequestClient,
    held: Held,
) -> None:
    """Identity's own earlier reply to the victim (a read of someone else's record would do as
    well), moved under the correlation id of the victim's next request."""
    subject_id, tag = await register(identity_client, name="Real Name")
    token = await customer_token(identity_client, tag)
    first_id = str(uuid.uuid4())
    await identity_client.read(token, subject_id, ["name"], request_id=first_id)
    _, first = await request_on_the_wire(suite, first_id, ReadPersonalData)
    old = await reply_record(suite, first.extra[REPLY_TO], first.extra[CORRELATION_ID])
    assert header(old, REPLY_MAC), "identity's reply carries no MAC"
    old_reply = from_kafka(old.headers, old.value or b"")

    request_id = str(uuid.uuid4())
    call = identity_client.read(token, subject_id, ["name"], request_id=request_id)
    values = await forged_before_identity(
        suite, requests_client, held, call, request_id, ReadPersonalData, lambda _: old_reply
    )
    assert values == {"name": "Real Name"}


async def test_a_request_id_squatted_with_the_victims_reply_key_never_answers_the_victim(
    suite: Suite, identity_client: IdentityClient, requests_client: RequestClient
) -> None:
    """The attacker copies the victim's id, source and reply key into a login of its own
    account, and gets it processed first. The stored reply (a session of the attacker's, sealed
    to the victim's key) is not sent for the victim's request, which has other bytes: the victim
    gets an authenticated `replayed-request` instead."""
    _, attacker_tag = await register(identity_client)
    _, victim_tag = await register(identity_client)
    identity_client.forget_sealing_key()
    request_id = str(uuid.uuid4())
    reply_key, reply_text = one_time_key()
    bound = identity_client.binding(Login.ce_type, request_id, "sealed", reply_key=reply_text)
    squat_id = str(uuid.uuid4())
    squat_fields = LoginFields(identifier=f"user_{attacker_tag}", password=PASSWORD, source="x")
    squat = Envelope.of(
        Login(sealed=await identity_client.seal_fields(squat_fields, bound), reply_key=reply_text),
        source=requests_client.config.source,
        id=request_id,
        extra={CORRELATION_ID: squat_id, REPLY_TO: requests_client.reply_topic},
    )
    await publish(suite.kafka.bootstrap_servers, topics.IDENTITY_COMMANDS, squat)
    squatted = await reply_record(suite, requests_client.reply_topic, squat_id)
    assert header(squatted, "ce_type") == LoginSucceeded.ce_type

    victim_fields = LoginFields(identifier=f"user_{victim_tag}", password=PASSWORD, source="x")
    with pytest.raises(ServiceError) as caught:
        await requests_client.request(
            topics.IDENTITY_COMMANDS,
            Login(
                sealed=await identity_client.seal_fields(victim_fields, bound),
                reply_key=reply_text,
            ),
            LoginSucceeded,
            request_id=request_id,
            check=await identity_client.reply_check(reply_key),
            timeout_s=DEADLINE_S,
        )
    assert caught.value.code == ErrorCode.REPLAYED_REQUEST
    denied = await stored_audit(
        suite, audit_records.c.request_id == request_id, audit_records.c.outcome == "denied"
    )
    assert [(r["action"], r["outcome"]) for r in denied] == [("login", "denied")]
