"""argon2id hashing of passwords and recovery answers, peppered, off the event loop.

The pepper (a key in Vault, never in the database) is applied as an HMAC before argon2, so a stolen
database alone can't be brute-forced offline. The pepper version is stored with each hash, so the
pepper can rotate: old hashes still verify and are upgraded on the next successful login.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from moment_crypto.keysets import VersionedKeys


@dataclass(frozen=True)
class Argon2Params:
    # OWASP's minimum for argon2id: m=19 MiB, t=2, p=1.
    memory_kib: int = 19_456
    iterations: int = 2
    parallelism: int = 1


class SecretHasher:
    def __init__(self, pepper: VersionedKeys, params: Argon2Params | None = None) -> None:
        self._pepper = pepper
        p = params or Argon2Params()
        self._argon2 = PasswordHasher(
            time_cost=p.iterations, memory_cost=p.memory_kib, parallelism=p.parallelism
        )

    @property
    def pepper(self) -> VersionedKeys:
        return self._pepper

    async def dummy_hash(self) -> str:
        """A hash of a random secret with the current parameters: what unknown users are checked
        against, so a login for nobody costs the same as a login for somebody."""
        return await self.hash(secrets.token_urlsafe(32))

    def _peppered(self, version: str, secret: str) -> bytes:
        return hmac.new(self._pepper.keys[version], secret.encode(), hashlib.sha256).digest()

    async def hash(self, secret: str) -> str:
        version = self._pepper.current
        digest = await asyncio.to_thread(self._argon2.hash, self._peppered(version, secret))
        return f"{version}${digest}"

    async def verify(self, stored: str, secret: str) -> bool:
        version, _, digest = stored.partition("$")
        if version not in self._pepper.keys:
            return False
        try:
            return await asyncio.to_thread(
                self._argon2.verify, digest, self._peppered(version, secret)
            )
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        version, _, digest = stored.partition("$")
        return version != self._pepper.current or self._argon2.check_needs_rehash(digest)
