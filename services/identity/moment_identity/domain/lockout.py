"""Throttling and lockout rules for login and recovery. Pure: the counters live in the database.

Counters are kept per account (by the blind index of the identifier typed, whether or not such an
account exists, so a lockout reveals nothing about who is registered) and per source.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class ThrottlePolicy:
    account_max_failures: int = 5
    source_max_failures: int = 20
    window_s: int = 900
    lockout_s: int = 900


@dataclass(frozen=True)
class Counter:
    key: str
    failures: int
    window_started_at: datetime
    locked_until: datetime | None


def account_key(identifier_index: str) -> str:
    return f"account:{identifier_index}"


def source_key(source_index: str) -> str:
    return f"source:{source_index}"


def retry_after_s(counter: Counter | None, now: datetime) -> int | None:
    """Seconds until the lock lifts, or None when not locked."""
    if counter is None or counter.locked_until is None or counter.locked_until <= now:
        return None
    return max(1, math.ceil((counter.locked_until - now).total_seconds()))


def limit_for(key: str, policy: ThrottlePolicy) -> int:
    return policy.source_max_failures if key.startswith("source:") else policy.account_max_failures


def lock_until(now: datetime, policy: ThrottlePolicy) -> datetime:
    return now + timedelta(seconds=policy.lockout_s)


def window_start(now: datetime, policy: ThrottlePolicy) -> datetime:
    """Failures older than this no longer count."""
    return now - timedelta(seconds=policy.window_s)
