"""What the background watch reads from the store, and its own progress (migration 0006).

Every move of the progress is a compare-and-set on the value read at the start of the same
transaction: two instances sweeping at once cannot both report the same gap, because the second
one's move finds the mark already moved and rolls its transaction (alerts included) back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import BigInteger, Insert, Table, Update, func, literal, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from moment_audit.adapters.orm import (
    audit_producer_marks,
    audit_records,
    audit_watch_progress,
    messaging,
)
from moment_audit.domain.gaps import Hole, Repeat

_R = audit_records.c
_M = audit_producer_marks.c
_P = audit_watch_progress.c


def _utc(at: datetime) -> datetime:
    # SQLite hands back naive datetimes; every instant the service writes is UTC.
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Scanned:
    """One record as the repeat scan sees it."""

    id: int
    source: str
    numbered: bool
    received_at: datetime


class SqlWatchStore:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def _insert_if_absent(self, table: Table, key: str) -> Insert:
        # ON CONFLICT DO NOTHING is dialect-specific SQL; both dialects we run on have it.
        if self._session.get_bind().dialect.name == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing(index_elements=[key])
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=[key])

    # -- progress of the record scan

    async def progress(self, name: str) -> int | None:
        found = await self._session.scalar(select(_P.last_id).where(_P.name == name))
        return None if found is None else int(found)

    async def move_progress(self, name: str, old: int | None, new: int) -> bool:
        """False when another instance moved it since `old` was read."""
        now = datetime.now(UTC)
        stmt: Insert | Update
        if old is None:
            stmt = self._insert_if_absent(audit_watch_progress, "name").values(
                name=name, last_id=new, updated_at=now
            )
        else:
            stmt = (
                update(audit_watch_progress)
                .where(_P.name == name, _P.last_id == old)
                .values(last_id=new, updated_at=now)
            )
        result = await self._session.execute(stmt)
        return bool(getattr(result, "rowcount", 0))

    async def scan(self, after: int, limit: int) -> list[Scanned]:
        rows = await self._session.execute(
            select(_R.id, _R.source, _R.producer_seq.is_not(None), _R.received_at)
            .where(_R.id > after)
            .order_by(_R.id)
            .limit(limit)
        )
        return [Scanned(int(i), str(s), bool(n), _utc(at)) for i, s, n, at in rows]

    async def repeats(self, after: int, up_to: int) -> list[tuple[str, Repeat]]:
        """Numbers stored more than once, among those of records after..up_to (by id)."""
        window = select(_R.source, _R.producer_seq).where(
            _R.id > after, _R.id <= up_to, _R.producer_seq.is_not(None)
        )
        rows = await self._session.execute(
            select(
                _R.source,
                _R.producer_seq,
                func.count(),
                func.min(_R.received_at),
                func.max(_R.received_at),
            )
            .where(tuple_(_R.source, _R.producer_seq).in_(window))
            .group_by(_R.source, _R.producer_seq)
            .having(func.count() > 1)
            .order_by(_R.source, _R.producer_seq)
        )
        return [
            (str(source), Repeat(int(seq), int(copies), _utc(first), _utc(last)))
            for source, seq, copies, first, last in rows
        ]

    # -- per-producer marks

    async def marks(self) -> dict[str, int | None]:
        rows = await self._session.execute(select(_M.source, _M.contiguous).order_by(_M.source))
        return {str(s): None if c is None else int(c) for s, c in rows}

    async def mark(self, source: str) -> int | None:
        found = await self._session.scalar(select(_M.contiguous).where(_M.source == source))
        return None if found is None else int(found)

    async def follow(self, sources: Iterable[str]) -> None:
        """Start following producers not followed yet (their baseline settles later)."""
        now = datetime.now(UTC)
        for source in sorted(set(sources)):
            await self._session.execute(
                self._insert_if_absent(audit_producer_marks, "source").values(
                    source=source, contiguous=None, updated_at=now
                )
            )

    async def move_mark(self, source: str, old: int | None, new: int) -> bool:
        """False when another instance moved it since `old` was read."""
        held = _M.contiguous.is_(None) if old is None else _M.contiguous == old
        result = await self._session.execute(
            update(audit_producer_marks)
            .where(_M.source == source, held)
            .values(contiguous=new, updated_at=datetime.now(UTC))
        )
        return bool(getattr(result, "rowcount", 0))

    async def lowest(self, source: str) -> tuple[int, datetime] | None:
        """The producer's lowest stored number, and when audit stored it."""
        row = (
            await self._session.execute(
                select(_R.producer_seq, _R.received_at)
                .where(_R.source == source, _R.producer_seq.is_not(None))
                .order_by(_R.producer_seq)
                .limit(1)
            )
        ).first()
        return None if row is None else (int(row[0]), _utc(row[1]))

    async def highest(self, source: str) -> int | None:
        found = await self._session.scalar(
            select(func.max(_R.producer_seq)).where(_R.source == source)
        )
        return None if found is None else int(found)

    async def holes(self, source: str, above: int) -> list[Hole]:
        """Missing numbers above `above`, each run with the time audit first stored a number
        past it (the earliest arrival among the records above it)."""
        seq = _R.producer_seq
        numbered = (
            select(
                seq.label("seq"),
                func.lag(seq, 1, literal(above, BigInteger())).over(order_by=seq).label("prev"),
                func.min(_R.received_at).over(order_by=seq.desc(), rows=(None, 0)).label("since"),
            )
            .where(_R.source == source, seq > above)
            .subquery()
        )
        rows = await self._session.execute(
            select(numbered.c.prev, numbered.c.seq, numbered.c.since)
            .where(numbered.c.seq > numbered.c.prev + 1)
            .order_by(numbered.c.seq)
        )
        return [Hole(int(prev), int(at), _utc(since)) for prev, at, since in rows]

    # -- the outbox, as the record of what was already raised

    async def raised(self, ids: Sequence[str]) -> set[str]:
        """Which of these alert ids are in the outbox already (published or not)."""
        if not ids:
            return set()
        outbox = messaging.outbox
        found = await self._session.scalars(
            select(outbox.c.event_id).where(outbox.c.event_id.in_(list(ids)))
        )
        return set(found)
