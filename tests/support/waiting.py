"""Waiting for a condition in integration tests, with deadlines a busy machine still meets.

The suite must pass with both cores of a 2-core machine loaded: a wait for something that will
happen is bounded generously (it returns as soon as it happens, so a long bound costs nothing
when all is well). A check that something does NOT happen can only wait a settle period and
look: it proves absence within that period, no more, so it is sized to what the code under test
does in that time (several sweeps, several checkpoint intervals), not to wall-clock luck.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

# What "eventually" means for something that will happen: ingest, a checkpoint, an alert.
DEADLINE_S = 120.0
POLL_S = 0.05


async def eventually(
    probe: Callable[[], Awaitable[T | None]],
    *,
    what: str,
    timeout_s: float = DEADLINE_S,
    poll_s: float = POLL_S,
) -> T:
    """The probe's first truthy result, polled until `timeout_s` (then the test fails)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        found = await probe()
        if found:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s:.0f}s")
        await asyncio.sleep(poll_s)
