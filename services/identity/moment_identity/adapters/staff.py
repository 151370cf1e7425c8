"""SQL repository for staff accounts: usernames as blind indexes only, secrets hashed."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from moment_identity.adapters.orm import staff_accounts

_S = staff_accounts.c


class StaffRecord(NamedTuple):
    staff_id: str
    password_hash: str
    roles: tuple[str, ...]
    session_version: int
    active: bool


class NewStaff(NamedTuple):
    staff_id: str
    username_index: str
    password_hash: str
    roles: tuple[str, ...]
    created_at: datetime


class SqlStaffRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, staff: NewStaff) -> None:
        await self._session.execute(
            insert(staff_accounts).values(
                staff_id=staff.staff_id,
                username_index=staff.username_index,
                password_hash=staff.password_hash,
                roles=list(staff.roles),
                session_version=0,
                active=True,
                created_at=staff.created_at,
            )
        )

    async def exists(self, username_index: str) -> bool:
        row = await self._session.execute(
            select(_S.staff_id).where(_S.username_index == username_index).limit(1)
        )
        return row.first() is not None

    async def by_username_index(self, username_index: str) -> StaffRecord | None:
        row = (
            await self._session.execute(
                select(staff_accounts).where(_S.username_index == username_index)
            )
        ).first()
        return None if row is None else _record(row)

    async def set_password_hash(self, staff_id: str, password_hash: str) -> None:
        await self._session.execute(
            update(staff_accounts)
            .where(_S.staff_id == staff_id)
            .values(password_hash=password_hash)
        )

    async def bump_session_version(self, staff_id: str) -> int | None:
        """Raise the account's session version (ending its sessions); the new version."""
        version = await self._session.scalar(
            update(staff_accounts)
            .where(_S.staff_id == staff_id)
            .values(session_version=_S.session_version + 1)
            .returning(_S.session_version)
        )
        return None if version is None else int(version)

    async def deactivate(self, username_index: str) -> StaffRecord | None:
        """Mark the account inactive and raise its session version in one atomic statement;
        returns the account as it now is, or None when no such account exists."""
        row = (
            await self._session.execute(
                update(staff_accounts)
                .where(_S.username_index == username_index)
                .values(active=False, session_version=_S.session_version + 1)
                .returning(*staff_accounts.c)
            )
        ).first()
        return None if row is None else _record(row)


def _record(row: Any) -> StaffRecord:
    return StaffRecord(
        staff_id=row.staff_id,
        password_hash=row.password_hash,
        roles=tuple(row.roles),
        session_version=row.session_version,
        active=bool(row.active),
    )
