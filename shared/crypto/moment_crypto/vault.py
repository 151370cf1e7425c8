"""An async facade over hvac: login, token renewal, Transit data keys, KV v2 and signatures.

hvac is blocking, so every request runs in a worker thread. A token that expired or was revoked
is replaced transparently: the client re-logs in before a call when the token's TTL has run
out, and once more when Vault answers 403, then reports VaultPermissionDenied.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from types import TracebackType
from typing import Any, Self, TypeVar

import hvac
import hvac.exceptions

from moment_crypto import _vault_auth
from moment_crypto._vault_errors import HVAC_FAILURES, translate
from moment_crypto.config import VaultConfig
from moment_crypto.errors import (
    CryptoError,
    DecryptionFailed,
    KeyDestroyed,
    VaultPermissionDenied,
    VaultRequestFailed,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIT_BATCH_LIMIT = 499
_EXPIRY_SKEW_S = 2.0
_MIN_RENEW_DELAY_S = 0.5
_KEY_GONE_MARKERS = ("disallowed by policy", "key not found")


class VaultClient:
    """One service's connection to Vault. Call `login()` (or `start()`), then the operations."""

    def __init__(self, config: VaultConfig) -> None:
        self._config = config
        self._hvac = hvac.Client(url=config.url, timeout=config.request_timeout_s)
        self._login_lock = asyncio.Lock()
        self._generation = 0
        self._expires_at: float | None = None
        self._ttl_s = 0
        self._renewable = False
        self._renewer: asyncio.Task[None] | None = None
        self.calls = 0
        self.logins = 0

    def __repr__(self) -> str:
        return f"VaultClient(url={self._config.url!r}, auth={self._config.auth_method!r})"

    @property
    def config(self) -> VaultConfig:
        return self._config

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- session -------------------------------------------------------------------------------

    async def login(self) -> None:
        """Log in now with the configured auth method, replacing any current token."""
        async with self._login_lock:
            await self._login_locked()

    async def start(self) -> None:
        """Log in if needed and keep the token alive in a background task until `stop()`."""
        if self._generation == 0:
            await self.login()
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.create_task(self._renew_loop(), name="vault-token-renewal")

    async def stop(self) -> None:
        """Stop token renewal and close the HTTP session; the token simply expires."""
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None
        self._hvac.adapter.close()

    async def _login_locked(self) -> None:
        result = await self._run("login", partial(_vault_auth.login, config=self._config))
        self._hvac.token = result.token.get_secret_value()
        self._ttl_s = result.ttl_s
        self._renewable = result.renewable
        self._expires_at = time.monotonic() + result.ttl_s if result.ttl_s > 0 else None
        self._generation += 1
        self.logins += 1
        log.info("vault login via %s, token ttl %ss", self._config.auth_method, result.ttl_s)

    def _token_expired(self) -> bool:
        if self._expires_at is None:
            return False
        # Leave room for the request in flight, but not more than a short TTL can afford.
        skew = min(_EXPIRY_SKEW_S, self._ttl_s / 4)
        return time.monotonic() >= self._expires_at - skew

    async def _ensure_token(self) -> None:
        if self._generation == 0 or self._token_expired():
            generation = self._generation
            async with self._login_lock:
                if self._generation == generation:
                    await self._login_locked()

    # -- renewal -------------------------------------------------------------------------------

    async def _renew_loop(self) -> None:
        while self._ttl_s > 0:
            issued_at = (self._expires_at or time.monotonic()) - self._ttl_s
            delay = issued_at + self._ttl_s * 2 / 3 - time.monotonic()
            await asyncio.sleep(max(delay, _MIN_RENEW_DELAY_S))
            try:
                await self._renew_or_relogin()
            except CryptoError as exc:
                log.warning("vault token renewal failed, retrying: %s", exc)
                await asyncio.sleep(max(self._ttl_s / 10, 1.0))

    async def _renew_or_relogin(self) -> None:
        async with self._login_lock:
            if not self._renewable:
                await self._login_locked()
                return
            try:
                response = await self._run("token renewal", _renew_self)
            except VaultPermissionDenied:
                await self._login_locked()
                return
            ttl = int(response["auth"].get("lease_duration") or 0)
            # A TTL capped by the role's max_ttl cannot be stretched further: get a new token.
            if ttl < self._ttl_s / 3:
                await self._login_locked()
                return
            self._expires_at = time.monotonic() + ttl
            log.debug("vault token renewed, ttl %ss", ttl)

    # -- request plumbing ----------------------------------------------------------------------

    async def _run(self, operation: str, fn: Callable[[hvac.Client], T]) -> T:
        self.calls += 1
        try:
            return await asyncio.to_thread(fn, self._hvac)
        except HVAC_FAILURES as exc:
            raise translate(exc, operation, self._config.url) from None

    async def _call(self, operation: str, fn: Callable[[hvac.Client], T]) -> T:
        await self._ensure_token()
        generation = self._generation
        try:
            return await self._run(operation, fn)
        except VaultPermissionDenied:
            async with self._login_lock:
                if self._generation == generation:
                    await self._login_locked()
            return await self._run(operation, fn)

    # -- operations ----------------------------------------------------------------------------

    async def generate_data_key(self, key_name: str) -> tuple[bytes, str]:
        """A fresh 256-bit data key: its plaintext and its Transit-wrapped form "vault:vN:..."."""
        mount = self._config.transit_mount
        response = await self._call(
            f"data key generation with {key_name!r}",
            lambda hv: hv.secrets.transit.generate_data_key(
                name=key_name, key_type="plaintext", bits=256, mount_point=mount
            ),
        )
        data = response["data"]
        return base64.b64decode(data["plaintext"]), str(data["ciphertext"])

    async def decrypt_data_keys(self, key_name: str, wrapped: Sequence[str]) -> list[bytes]:
        """Unwrap data keys in Transit batches of at most 499, keeping the input order."""
        keys: list[bytes] = []
        for start in range(0, len(wrapped), TRANSIT_BATCH_LIMIT):
            chunk = wrapped[start : start + TRANSIT_BATCH_LIMIT]
            keys.extend(await self._decrypt_chunk(key_name, chunk))
        return keys

    async def _decrypt_chunk(self, key_name: str, chunk: Sequence[str]) -> list[bytes]:
        path = f"/v1/{self._config.transit_mount}/decrypt/{key_name}"
        body = {
            "batch_input": [{"ciphertext": c} for c in chunk],
            "partial_failure_response_code": 200,
        }
        try:
            response = await self._call(
                f"data key unwrap with {key_name!r}", partial(_post_batch, path=path, body=body)
            )
        except VaultRequestFailed as exc:
            if any(m in e for e in exc.vault_errors for m in _KEY_GONE_MARKERS):
                raise KeyDestroyed(f"the Transit key {key_name!r} can no longer unwrap") from None
            raise
        results: list[dict[str, Any]] = response["data"]["batch_results"]
        errors = [str(r["error"]) for r in results if r.get("error")]
        if errors:
            raise _unwrap_error(key_name, errors, len(chunk))
        return [base64.b64decode(r["plaintext"]) for r in results]

    async def read_kv(self, path: str) -> dict[str, str]:
        """The latest version of a KV v2 secret as a flat string map."""
        mount = self._config.kv_mount
        response = await self._call(
            f"KV read of {path!r}",
            lambda hv: hv.secrets.kv.v2.read_secret_version(
                path=path, mount_point=mount, raise_on_deleted_version=True
            ),
        )
        return {str(k): str(v) for k, v in response["data"]["data"].items()}

    async def write_kv(self, path: str, data: Mapping[str, str]) -> int:
        """Write a new version of a KV v2 secret; returns the version number."""
        mount = self._config.kv_mount
        payload = dict(data)
        response = await self._call(
            f"KV write of {path!r}",
            lambda hv: hv.secrets.kv.v2.create_or_update_secret(
                path=path, secret=payload, mount_point=mount
            ),
        )
        return int(response["data"]["version"])

    async def destroy_kv_versions(self, path: str, versions: Sequence[int]) -> None:
        """Destroy KV v2 versions for good (KV keeps every version otherwise)."""
        if not versions:
            return
        mount = self._config.kv_mount
        await self._call(
            f"KV destroy of {path!r}",
            lambda hv: hv.secrets.kv.v2.destroy_secret_versions(
                path=path, versions=list(versions), mount_point=mount
            ),
        )

    async def sign(self, key_name: str, data: bytes) -> str:
        """A Transit signature "vault:vN:..." over `data`."""
        mount = self._config.transit_mount
        response = await self._call(
            f"signing with {key_name!r}",
            lambda hv: hv.secrets.transit.sign_data(
                name=key_name, hash_input=_b64(data), mount_point=mount
            ),
        )
        return str(response["data"]["signature"])

    async def transit_public_keys(self, key_name: str) -> dict[int, bytes]:
        """The raw 32-byte Ed25519 public keys of a Transit signing key, by key version.

        Public keys are not secret: this lets any service verify signatures offline. Versions
        below the key's min_decryption_version are left out, as Transit no longer verifies them.
        """
        mount = self._config.transit_mount
        response = await self._call(
            f"public key read of {key_name!r}",
            lambda hv: hv.secrets.transit.read_key(name=key_name, mount_point=mount),
        )
        data = response["data"]
        if data.get("type") != "ed25519":
            raise VaultRequestFailed(f"the Transit key {key_name!r} is not an ed25519 key")
        oldest = int(data.get("min_decryption_version") or 1)
        return {
            int(version): base64.b64decode(entry["public_key"])
            for version, entry in data["keys"].items()
            if int(version) >= oldest
        }

    async def verify(self, key_name: str, data: bytes, signature: str) -> bool:
        """Whether `signature` is a valid Transit signature over `data` (malformed: False)."""
        mount = self._config.transit_mount
        try:
            response = await self._call(
                f"signature verification with {key_name!r}",
                lambda hv: hv.secrets.transit.verify_signed_data(
                    name=key_name, hash_input=_b64(data), signature=signature, mount_point=mount
                ),
            )
        except VaultRequestFailed as exc:
            if exc.status == 400 and not any("not found" in e for e in exc.vault_errors):
                return False
            raise
        return bool(response["data"]["valid"])

    async def health(self) -> bool:
        """True when Vault is reachable, initialised, unsealed and active."""
        try:
            response = await self._run(
                "health check", lambda hv: hv.sys.read_health_status(method="GET")
            )
        except CryptoError:
            return False
        # hvac hands back the decoded body only for HTTP 200; any other status is a Response.
        return isinstance(response, dict) and not response.get("sealed", True)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _renew_self(hv: hvac.Client) -> dict[str, Any]:
    response: dict[str, Any] = hv.auth.token.renew_self()
    return response


def _post_batch(hv: hvac.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    try:
        response: dict[str, Any] = hv.adapter.post(path, json=body)
    except hvac.exceptions.InvalidRequest as exc:
        # When every item fails Vault answers 400 even with partial_failure_response_code; the
        # body still holds per-item errors, which are more useful than the status.
        payload = exc.json if isinstance(exc.json, dict) else {}
        if "batch_results" in (payload.get("data") or {}):
            return payload
        raise
    return response


def _unwrap_error(key_name: str, errors: list[str], total: int) -> CryptoError:
    if any(m in e for e in errors for m in _KEY_GONE_MARKERS):
        return KeyDestroyed(
            f"{len(errors)} of {total} data keys can no longer be unwrapped with {key_name!r}"
        )
    return DecryptionFailed(
        f"Vault could not unwrap {len(errors)} of {total} data keys with {key_name!r}: {errors[0]}"
    )
