"""The store's chained checkpoints as the live witness compares them (service/witness_watch.py).

Read in pages by (partition, number), so a year of checkpoints never sits in memory at once.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from moment_audit.adapters.orm import audit_checkpoints
from moment_audit.domain.checkpoints import Checkpoint
from moment_audit.service.witness_memory import Stored

PAGE = 5000
_C = audit_checkpoints.c


def _stored(row: Any) -> Stored:
    partitions = tuple(int(p) for p in json.loads(row.partitions)) if row.partitions else ()
    checkpoint = Checkpoint(
        int(row.chain_partition),
        int(row.seq),
        str(row.hash),
        row.created_at,
        str(row.signature),
        int(row.number),
        row.prev,
        partitions,
    )
    return Stored.of(checkpoint)


async def stored_checkpoints(session: AsyncSession, page: int = PAGE) -> AsyncIterator[Stored]:
    """Every chained checkpoint, by partition and number."""
    columns = (_C.chain_partition, _C.number, _C.seq, _C.hash, _C.created_at, _C.prev)
    query = (
        select(*columns, _C.partitions, _C.signature)
        .where(_C.number.is_not(None))
        .order_by(_C.chain_partition, _C.number)
        .limit(page)
    )
    after: tuple[int, int] | None = None
    while True:
        where = query if after is None else query.where(tuple_(*columns[:2]) > after)
        rows = (await session.execute(where)).all()
        for row in rows:
            yield _stored(row)
        if len(rows) < page:
            return
        after = (int(rows[-1].chain_partition), int(rows[-1].number))


async def present(session: AsyncSession, keys: Sequence[tuple[int, int]]) -> set[tuple[int, int]]:
    """Which of these (partition, number) the store holds now."""
    found: set[tuple[int, int]] = set()
    for start in range(0, len(keys), 500):
        chunk = list(keys[start : start + 500])
        rows = await session.execute(
            select(_C.chain_partition, _C.number).where(
                tuple_(_C.chain_partition, _C.number).in_(chunk)
            )
        )
        found.update((int(p), int(n)) for p, n in rows)
    return found
