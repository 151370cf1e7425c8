"""A pending request takes only a reply its check accepts: a forgery arriving first neither
answers it nor uses it up, and replies it can't judge yet are held in bounded number."""

from __future__ import annotations

import asyncio

from moment_client.client import HELD_REPLIES, ClientConfig, RequestClient, _Pending
from moment_contracts.envelope import Envelope

REQUEST = Envelope(type="moment.identity.login.v1", source="/storefront", data=b"{}", id="r-1")


class Verdicts:
    """Judges a reply by its body: b"ok" authentic, b"later" undecided until learnt."""

    def __init__(self) -> None:
        self.learnt = 0

    def verdict(self, request: Envelope, reply: Envelope) -> bool | None:
        assert request is REQUEST
        if reply.data == b"later":
            return True if self.learnt else None
        return reply.data == b"ok"

    async def learn(self) -> None:
        self.learnt += 1


def reply(data: bytes) -> Envelope:
    return Envelope(type="moment.identity.login-succeeded.v1", source="/identity", data=data)


def pending_client(check: Verdicts) -> tuple[RequestClient, _Pending]:
    client = RequestClient(ClientConfig())
    pending = _Pending(REQUEST, check)
    client._pending["c-1"] = pending
    return client, pending


async def test_a_forgery_first_is_refused_and_the_real_reply_still_answers() -> None:
    client, pending = pending_client(Verdicts())
    assert client._deliver("c-1", reply(b"forged")) == "unauthenticated"
    assert client._deliver("c-1", reply(b"ok")) is True
    assert client._deliver("c-1", reply(b"ok")) is False  # answered already
    assert client._deliver("other", reply(b"ok")) is False
    taken = await asyncio.wait_for(client._authentic(pending), 5)
    assert taken.data == b"ok"


async def test_undecided_replies_are_held_in_bounded_number_and_judged_once_learnt() -> None:
    check = Verdicts()
    client, pending = pending_client(check)
    outcomes = [client._deliver("c-1", reply(b"later")) for _ in range(HELD_REPLIES + 3)]
    assert outcomes == [True] * HELD_REPLIES + ["unauthenticated"] * 3
    taken = await asyncio.wait_for(client._authentic(pending), 5)
    assert taken.data == b"later"
    assert check.learnt == 1


async def test_an_undecided_forgery_is_dropped_after_learning_and_the_real_reply_taken() -> None:
    class Forged(Verdicts):
        def verdict(self, request: Envelope, reply: Envelope) -> bool | None:
            if reply.data == b"later":
                return False if self.learnt else None
            return super().verdict(request, reply)

    check = Forged()
    client, pending = pending_client(check)
    assert client._deliver("c-1", reply(b"later")) is True
    assert client._deliver("c-1", reply(b"ok")) is True
    taken = await asyncio.wait_for(client._authentic(pending), 5)
    assert taken.data == b"ok"
    assert check.learnt == 1
