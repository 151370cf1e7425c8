"""Per-producer sequence numbers for audit events, counted in identity's database.

Every identity instance shares the one row, so the numbers stay gapless across instances; the
row lock it takes is held until the caller's transaction ends, which orders concurrent writers.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from moment_identity.adapters.orm import producer_sequences

_S = producer_sequences.c


async def take_sequence(session: AsyncSession, name: str, count: int = 1) -> int:
    """Reserve `count` consecutive numbers for `name`; returns the first of them."""
    upsert = (
        _insert(session)
        .values(name=name, value=count)
        .on_conflict_do_update(index_elements=["name"], set_={"value": _S.value + count})
        .returning(_S.value)
    )
    last = int((await session.execute(upsert)).scalar_one())
    return last - count + 1


def _insert(session: AsyncSession) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(producer_sequences)
    return sqlite.insert(producer_sequences)
