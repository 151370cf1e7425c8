"""Atomic failure counters in SQL, so concurrent instances never lose an increment."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from moment_identity.adapters.orm import auth_throttle
from moment_identity.domain.lockout import (
    Counter,
    ThrottlePolicy,
    limit_for,
    lock_until,
    window_start,
)

_T = auth_throttle.c


class SqlThrottleStore:
    def __init__(self, session: AsyncSession, policy: ThrottlePolicy) -> None:
        self._session = session
        self._policy = policy

    async def counters(self, keys: Iterable[str]) -> dict[str, Counter]:
        rows = await self._session.execute(select(auth_throttle).where(_T.key.in_(list(keys))))
        return {row.key: _counter(row) for row in rows}

    async def fail(self, key: str, now: datetime) -> Counter:
        """Count one failure; lock the key when it reaches its limit within the window."""
        stale = window_start(now, self._policy)
        insert = self._insert().values(key=key, failures=1, window_started_at=now)
        fresh = _T.window_started_at < stale
        upsert = insert.on_conflict_do_update(
            index_elements=["key"],
            set_={
                "failures": case((fresh, 1), else_=_T.failures + 1),
                "window_started_at": case((fresh, now), else_=_T.window_started_at),
            },
        ).returning(*auth_throttle.c)
        counter = _counter((await self._session.execute(upsert)).one())
        if counter.failures < limit_for(key, self._policy):
            return counter
        until = lock_until(now, self._policy)
        await self._session.execute(
            update(auth_throttle).where(_T.key == key).values(failures=0, locked_until=until)
        )
        return Counter(key, 0, counter.window_started_at, until)

    async def clear(self, key: str) -> None:
        await self._session.execute(delete(auth_throttle).where(_T.key == key))

    def _insert(self) -> Any:
        if self._session.get_bind().dialect.name == "postgresql":
            return postgresql.insert(auth_throttle)
        return sqlite.insert(auth_throttle)


def _counter(row: Any) -> Counter:
    return Counter(
        key=row.key,
        failures=row.failures,
        window_started_at=_aware(row.window_started_at),
        locked_until=_aware(row.locked_until) if row.locked_until else None,
    )


def _aware(moment: datetime) -> datetime:
    # SQLite returns naive datetimes; everything stored here is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
