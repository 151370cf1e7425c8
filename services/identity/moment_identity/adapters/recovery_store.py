"""SQL for password recovery: the account's recovery view, one-time codes, the password reset."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from moment_crypto.envelope import WrappedKey
from moment_identity.adapters.orm import recovery_codes, subject_keys, users

_C = recovery_codes.c
# Decrypted for a recovery: the question to show, and what a new password must not contain.
RECOVERY_FIELDS = ("recovery_question", "username", "email")


class RecoveryAccount(NamedTuple):
    subject_id: str
    locale: str
    answer_hash: str
    key: WrappedKey
    encrypted: dict[str, bytes]


class StoredCode(NamedTuple):
    code_hash: str
    expires_at: datetime
    created_at: datetime


class SqlRecoveryStore:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def account(self, identifier_index: str) -> RecoveryAccount | None:
        """The account a username or e-mail index points at, with its wrapped key."""
        query = (
            select(
                users.c.subject_id,
                users.c.locale,
                users.c.recovery_answer_hash,
                subject_keys.c.key_version,
                subject_keys.c.wrapped_key,
                *(users.c[f"{name}_ct"] for name in RECOVERY_FIELDS),
            )
            .join(subject_keys, subject_keys.c.subject_id == users.c.subject_id)
            .where(
                (users.c.username_index == identifier_index)
                | (users.c.email_index == identifier_index)
            )
        )
        row = (await self._session.execute(query)).mappings().first()
        if row is None:
            return None
        return RecoveryAccount(
            subject_id=row["subject_id"],
            locale=row["locale"],
            answer_hash=row["recovery_answer_hash"],
            key=WrappedKey(row["subject_id"], row["key_version"], row["wrapped_key"]),
            encrypted={name: row[f"{name}_ct"] for name in RECOVERY_FIELDS},
        )

    async def code(self, subject_id: str) -> StoredCode | None:
        row = (
            await self._session.execute(
                select(_C.code_hash, _C.expires_at, _C.created_at).where(
                    _C.subject_id == subject_id
                )
            )
        ).first()
        if row is None:
            return None
        return StoredCode(row.code_hash, _aware(row.expires_at), _aware(row.created_at))

    async def put_code(
        self, subject_id: str, code_hash: str, now: datetime, expires_at: datetime
    ) -> None:
        """Replace the subject's code: only the newest one works."""
        values = {
            "code_hash": code_hash,
            "expires_at": expires_at,
            "attempts": 0,
            "created_at": now,
        }
        upsert = (
            self._insert()
            .values(subject_id=subject_id, **values)
            .on_conflict_do_update(index_elements=["subject_id"], set_=values)
        )
        await self._session.execute(upsert)

    async def use_code(self, subject_id: str, code_hash: str, now: datetime) -> bool:
        """Spend the code if it is still the live one: of two racing uses, exactly one wins."""
        spent = await self._session.execute(
            delete(recovery_codes)
            .where(_C.subject_id == subject_id, _C.code_hash == code_hash, _C.expires_at > now)
            .returning(_C.subject_id)
        )
        return spent.first() is not None

    async def fail_code(self, subject_id: str, code_hash: str, max_attempts: int) -> None:
        """Count a wrong try against the live code; the code dies at `max_attempts`."""
        counted = await self._session.execute(
            update(recovery_codes)
            .where(_C.subject_id == subject_id, _C.code_hash == code_hash)
            .values(attempts=_C.attempts + 1)
            .returning(_C.attempts)
        )
        attempts = counted.scalar_one_or_none()
        if attempts is not None and attempts >= max_attempts:
            await self._session.execute(
                delete(recovery_codes).where(_C.subject_id == subject_id, _C.code_hash == code_hash)
            )

    async def reset_password(self, subject_id: str, password_hash: str) -> int:
        """Set the new hash and raise the session version, revoking every token issued so far;
        returns the new session version."""
        raised = await self._session.execute(
            update(users)
            .where(users.c.subject_id == subject_id)
            .values(
                password_hash=password_hash,
                session_version=users.c.session_version + 1,
                updated_at=datetime.now(UTC),
            )
            .returning(users.c.session_version)
        )
        return int(raised.scalar_one())

    def _insert(self) -> Any:
        if self._session.get_bind().dialect.name == "postgresql":
            return postgresql.insert(recovery_codes)
        return sqlite.insert(recovery_codes)


def _aware(moment: datetime) -> datetime:
    # SQLite returns naive datetimes; everything stored here is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
