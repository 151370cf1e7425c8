"""A client survives anything written to its reply topic: each record is dropped and counted,
and the client keeps answering (the attack: one null header value killed the reply reader)."""

from __future__ import annotations

import resource
import uuid
from collections.abc import AsyncIterator

import pytest
from hypothesis import strategies as st

from moment_client.client import ClientConfig, RequestClient
from moment_client.identity import IdentityClient
from moment_contracts.envelope import CORRELATION_ID, Envelope
from moment_contracts.errors import ErrorCode, ErrorReply
from tests.support.poison_records import (
    NON_UTF8,
    Headers,
    bodies,
    deep,
    draw,
    headers_over,
    keys,
    produce_raw,
    produce_raw_header_names,
)
from tests.support.suite import Suite
from tests.support.waiting import eventually

LIMIT = ClientConfig().max_reply_bytes
STRAY = Envelope.of(
    ErrorReply.of(ErrorCode.INTERNAL), source="/x", extra={CORRELATION_ID: str(uuid.uuid4())}
)
Raw = tuple[bytes | None, bytes | None, Headers]


@pytest.fixture
async def client(suite: Suite) -> AsyncIterator[RequestClient]:
    config = ClientConfig(bootstrap_servers=suite.kafka.bootstrap_servers, source="/test/client")
    async with RequestClient(config) as started:
        yield started


def seen_attacks() -> list[Raw]:
    headers: Headers = list(STRAY.headers())
    return [
        (None, STRAY.data, [*headers, ("x-null", None)]),
        (None, STRAY.data, [(CORRELATION_ID, None), *headers]),
        (None, STRAY.data, [(CORRELATION_ID, NON_UTF8[0]), *headers]),
        (None, STRAY.data, [n for n in headers if n[0] != CORRELATION_ID]),
        (None, STRAY.data, [("ce_type", b"moment.nothing.v1"), *headers[1:]]),
        (b"\xff" * 64, None, headers),
        (None, deep(), headers),
        (None, b"x" * (20 * LIMIT), headers),
        (None, b"", []),
    ]


async def assert_still_answers(client: RequestClient, dropped: int) -> None:
    """The client answers a real request, and has dropped (and counted) `dropped` records."""
    identity = IdentityClient(client)
    identity.forget_sealing_key()
    assert await identity.sealing_key()
    assert client.replies is not None
    replies = client.replies

    async def counted() -> bool:
        return sum(replies.dropped.values()) >= dropped

    await eventually(counted, what=f"{dropped} records dropped")
    assert sum(client.replies.dropped.values()) == dropped, client.replies.dropped
    assert client._reader is not None
    assert not client._reader.done()


async def test_the_attacks_seen_leave_the_client_answering(client: RequestClient) -> None:
    await IdentityClient(client).sealing_key()
    grown_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    attacks = seen_attacks()
    await produce_raw(client.config.bootstrap_servers, client.reply_topic, attacks, partition=0)
    await assert_still_answers(client, len(attacks))
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - grown_before
    assert grown_kib < 200 * 1024, f"the test process grew by {grown_kib} KiB"


async def test_records_aiokafka_cannot_unpack_are_skipped(client: RequestClient) -> None:
    """A header name that is not UTF-8 makes aiokafka fail the fetch of its whole batch."""
    await produce_raw(client.config.bootstrap_servers, client.reply_topic, [(None, b"{}", [])])
    await produce_raw_header_names(
        client.config.bootstrap_servers, client.reply_topic, NON_UTF8, partition=0
    )
    await produce_raw(client.config.bootstrap_servers, client.reply_topic, [(None, b"{}", [])])
    # Two malformed records around the batch, and each record of the batch skipped: as
    # "unreadable" by the reader itself, or as "malformed" where a service in the same process
    # made aiokafka hand such records on as stubs (moment_messaging's fetching.install()).
    await assert_still_answers(client, 2 + len(NON_UTF8))
    assert client.replies is not None
    assert client.replies.dropped["unreadable"] + client.replies.dropped["malformed"] == 2 + len(
        NON_UTF8
    )


async def test_generated_records_leave_the_client_answering(client: RequestClient) -> None:
    strategy = st.tuples(keys, bodies(STRAY.data, LIMIT), headers_over(list(STRAY.headers())))
    records = draw(strategy, 30)
    await produce_raw(client.config.bootstrap_servers, client.reply_topic, records, partition=0)
    await assert_still_answers(client, len(records))
