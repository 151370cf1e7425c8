"""SQL repository for users and their wrapped subject keys."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NamedTuple

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from moment_contracts.profile import ExportAccount
from moment_crypto.envelope import SubjectKey, WrappedKey
from moment_identity.adapters.orm import erasures, subject_keys, users
from moment_identity.domain.model import User


class Credentials(NamedTuple):
    subject_id: str
    password_hash: str
    status: str
    session_version: int


class SqlUserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, user: User, key: SubjectKey) -> None:
        await self._session.execute(
            insert(subject_keys).values(
                subject_id=user.subject_id,
                key_version=key.version,
                wrapped_key=key.wrapped,
                created_at=user.created_at,
            )
        )
        await self._session.execute(
            insert(users).values(
                subject_id=user.subject_id,
                status=user.status,
                locale=user.locale,
                key_version=user.key_version,
                username_index=user.username_index,
                email_index=user.email_index,
                password_hash=user.password_hash,
                recovery_answer_hash=user.recovery_answer_hash,
                created_at=user.created_at,
                updated_at=user.created_at,
                **{f"{name}_ct": value for name, value in user.encrypted.items()},
            )
        )

    async def exists_by_index(self, username_index: str, email_index: str) -> bool:
        row = await self._session.execute(
            select(users.c.subject_id)
            .where(
                (users.c.username_index == username_index) | (users.c.email_index == email_index)
            )
            .limit(1)
        )
        return row.first() is not None

    async def taken_by_another(self, subject_id: str, indexes: dict[str, str]) -> bool:
        """Whether another subject holds any of these (`username_index`, `email_index`) values."""
        if not indexes:
            return False
        clauses = [users.c[column] == value for column, value in indexes.items()]
        row = await self._session.execute(
            select(users.c.subject_id)
            .where(or_(*clauses), users.c.subject_id != subject_id)
            .limit(1)
        )
        return row.first() is not None

    async def credentials(self, identifier_index: str) -> Credentials | None:
        """The login view of the account a username or e-mail index points at."""
        row = (
            await self._session.execute(
                select(
                    users.c.subject_id,
                    users.c.password_hash,
                    users.c.status,
                    users.c.session_version,
                ).where(
                    (users.c.username_index == identifier_index)
                    | (users.c.email_index == identifier_index)
                )
            )
        ).first()
        if row is None:
            return None
        return Credentials(row.subject_id, row.password_hash, row.status, row.session_version)

    async def set_password_hash(self, subject_id: str, password_hash: str) -> None:
        await self._session.execute(
            update(users)
            .where(users.c.subject_id == subject_id)
            .values(password_hash=password_hash, updated_at=datetime.now(UTC))
        )

    async def account(self, subject_id: str) -> ExportAccount | None:
        """The non-secret account facts an export includes."""
        row = (
            await self._session.execute(
                select(
                    users.c.status,
                    users.c.locale,
                    users.c.key_version,
                    users.c.created_at,
                    users.c.updated_at,
                ).where(users.c.subject_id == subject_id)
            )
        ).first()
        if row is None:
            return None
        # SQLite hands the times back naive: the model takes them as the UTC they were written in.
        return ExportAccount(
            status=row.status,
            locale=row.locale,
            key_version=str(row.key_version),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    async def update_fields(
        self, subject_id: str, encrypted: dict[str, bytes], indexes: dict[str, str]
    ) -> None:
        values: dict[str, object] = {f"{name}_ct": token for name, token in encrypted.items()}
        await self._session.execute(
            update(users)
            .where(users.c.subject_id == subject_id)
            .values(**values, **indexes, updated_at=datetime.now(UTC))
        )

    async def bump_session_version(self, subject_id: str) -> int | None:
        """Revoke every token issued so far; returns the new version (None: no such subject)."""
        result = await self._session.execute(
            update(users)
            .where(users.c.subject_id == subject_id)
            .values(session_version=users.c.session_version + 1)
            .returning(users.c.session_version)
        )
        version = result.scalar_one_or_none()
        return None if version is None else int(version)

    async def erase(self, subject_id: str, request_id: str) -> None:
        """Crypto-shredding: the wrapped key goes, and with it (ON DELETE CASCADE) every row
        holding the subject's ciphertext; a tombstone records that, and when, nothing else."""
        await self._session.execute(
            delete(subject_keys).where(subject_keys.c.subject_id == subject_id)
        )
        await self._session.execute(
            insert(erasures).values(
                subject_id=subject_id, erased_at=datetime.now(UTC), request_id=request_id
            )
        )

    async def wrapped_key(self, subject_id: str) -> WrappedKey | None:
        row = (
            await self._session.execute(
                select(subject_keys.c.key_version, subject_keys.c.wrapped_key).where(
                    subject_keys.c.subject_id == subject_id
                )
            )
        ).first()
        if row is None:
            return None
        return WrappedKey(subject_id=subject_id, version=row.key_version, wrapped=row.wrapped_key)

    async def encrypted_fields(self, subject_id: str) -> dict[str, bytes] | None:
        row = (
            (await self._session.execute(select(users).where(users.c.subject_id == subject_id)))
            .mappings()
            .first()
        )
        if row is None:
            return None
        return {k.removesuffix("_ct"): row[k] for k in row if k.endswith("_ct")}
