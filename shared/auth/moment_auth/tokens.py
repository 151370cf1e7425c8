"""Issue tokens through Vault Transit and verify them offline with the public keys.

The identity service's private key never leaves Vault: `TokenSigner` asks Transit to sign the
JWS signing input with the ed25519 key "identity-token-signing". Every other service loads the
public keys once (`TokenVerifier.from_vault`) and then verifies without calling Vault, reloading
them only when a token names a key version it has not seen (after a rotation), at most once per
refresh interval.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, Self

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from moment_auth import jws
from moment_auth.claims import DEFAULT_AUDIENCE, ISSUER, TokenClaims, audiences
from moment_auth.errors import (
    AuthError,
    TokenAudienceMismatch,
    TokenExpired,
    TokenIssuerMismatch,
    TokenNotYetValid,
    TokenSignatureInvalid,
    TokenSigningFailed,
    TokenUnknownKey,
)
from moment_auth.principals import Principal
from moment_auth.revocation import RevocationList
from moment_crypto import CryptoError

log = logging.getLogger(__name__)

SIGNING_KEY_NAME = "identity-token-signing"
DEFAULT_TTL_S = 900
_SIGN_ATTEMPTS = 3
_TRANSIT_SIGNATURE = re.compile(r"vault:v(?P<version>[1-9][0-9]*):(?P<signature>[A-Za-z0-9+/=]+)")

KeySource = Callable[[], Awaitable[Mapping[str, Ed25519PublicKey]]]


class PublicKeyReader(Protocol):
    """What reading Transit public keys needs; `moment_crypto.VaultClient` provides it."""

    async def transit_public_keys(self, key_name: str) -> dict[int, bytes]: ...


class TransitSigner(PublicKeyReader, Protocol):
    """What issuing tokens needs; `moment_crypto.VaultClient` provides it."""

    async def sign(self, key_name: str, data: bytes) -> str: ...


@dataclass(frozen=True)
class IssuedToken:
    """A bearer token: hand `token` to its holder, never log it (it is left out of repr)."""

    token: str = field(repr=False)
    expires_at: datetime
    jti: str


@dataclass(frozen=True)
class VerifiedToken:
    principal: Principal
    claims: TokenClaims


def public_keys_by_kid(key_name: str, raw: Mapping[int, bytes]) -> dict[str, Ed25519PublicKey]:
    """Raw Ed25519 public keys by version, as `TokenVerifier` wants them: by kid."""
    try:
        return {
            jws.kid_for(key_name, version): Ed25519PublicKey.from_public_bytes(key)
            for version, key in raw.items()
        }
    except ValueError:
        raise AuthError(f"a public key of {key_name!r} is not a raw Ed25519 key") from None


def parse_transit_signature(signature: str) -> tuple[int, bytes]:
    """(key version, raw 64-byte signature) of Transit's "vault:vN:<base64>" for ed25519."""
    match = _TRANSIT_SIGNATURE.fullmatch(signature)
    if match is None:
        raise TokenSigningFailed("Transit returned a signature in an unexpected format")
    try:
        raw = base64.b64decode(match["signature"], validate=True)
    except binascii.Error:
        raise TokenSigningFailed("Transit returned a signature that is not base64") from None
    if len(raw) != jws.SIGNATURE_BYTES:
        raise TokenSigningFailed("Transit returned a signature that is not Ed25519")
    return int(match["version"]), raw


class TokenSigner:
    """Issues tokens for principals; only the identity service may use the signing key."""

    def __init__(
        self,
        vault: TransitSigner,
        key_name: str = SIGNING_KEY_NAME,
        ttl_s: int = DEFAULT_TTL_S,
        *,
        issuer: str = ISSUER,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self._vault = vault
        self._key_name = key_name
        self._ttl_s = ttl_s
        self._issuer = issuer
        self._clock = clock
        self._keys: dict[int, Ed25519PublicKey] = {}

    async def issue(
        self, principal: Principal, audience: str | Sequence[str] = DEFAULT_AUDIENCE
    ) -> IssuedToken:
        """A token for `principal`, valid for ttl_s from now, signed by Vault Transit."""
        claims = TokenClaims.for_principal(
            principal,
            issued_at=int(self._clock()),
            ttl_s=self._ttl_s,
            audience=audience,
            issuer=self._issuer,
        )
        token = await self._sign(claims.to_json())
        return IssuedToken(token, datetime.fromtimestamp(claims.exp, UTC), claims.jti)

    async def _sign(self, payload: bytes) -> str:
        # The kid is part of what is signed, yet Transit picks the version (its latest) itself:
        # sign with the version believed latest, and sign again if Transit used another one.
        for _ in range(_SIGN_ATTEMPTS):
            if not self._keys:
                await self._load_keys()
            version = max(self._keys)
            data = jws.signing_input(jws.header_for(jws.kid_for(self._key_name, version)), payload)
            used, signature = parse_transit_signature(await self._vault.sign(self._key_name, data))
            if used == version:
                self._self_check(version, data, signature)
                return jws.compact(data, signature)
            log.info("token signing key %s moved to v%s, signing again", self._key_name, used)
            self._keys = {}
        raise TokenSigningFailed("Transit kept signing with an unexpected key version")

    async def _load_keys(self) -> None:
        raw = await self._vault.transit_public_keys(self._key_name)
        if not raw:
            raise TokenSigningFailed(f"the Transit key {self._key_name!r} has no public keys")
        self._keys = {v: Ed25519PublicKey.from_public_bytes(k) for v, k in raw.items()}

    def _self_check(self, version: int, data: bytes, signature: bytes) -> None:
        # Catches a wrong key type or signature conversion here, not in every verifying service.
        try:
            self._keys[version].verify(signature, data)
        except InvalidSignature:
            raise TokenSigningFailed("Transit's signature does not verify locally") from None


class TokenVerifier:
    """Verifies tokens offline against public keys by kid; one per service, shared by tasks."""

    def __init__(
        self,
        public_keys: Mapping[str, Ed25519PublicKey],
        *,
        issuer: str = ISSUER,
        audience: str | Collection[str] = DEFAULT_AUDIENCE,
        leeway_s: float = 30,
        clock: Callable[[], float] = time.time,
        key_source: KeySource | None = None,
        refresh_interval_s: float = 60,
    ) -> None:
        self._keys = dict(public_keys)
        self._issuer = issuer
        self._audiences = frozenset(audiences(audience) if isinstance(audience, str) else audience)
        self._leeway_s = leeway_s
        self._clock = clock
        self._source = key_source
        self._refresh_interval_s = refresh_interval_s
        self._refresh_lock = asyncio.Lock()
        self._last_refresh = -math.inf
        self.refreshes = 0

    @classmethod
    async def from_vault(
        cls,
        vault: PublicKeyReader,
        key_name: str = SIGNING_KEY_NAME,
        *,
        issuer: str = ISSUER,
        audience: str | Collection[str] = DEFAULT_AUDIENCE,
        leeway_s: float = 30,
        clock: Callable[[], float] = time.time,
        refresh_interval_s: float = 60,
    ) -> Self:
        """A verifier holding the key's current public keys (one Vault call), able to refresh."""

        async def load() -> dict[str, Ed25519PublicKey]:
            return public_keys_by_kid(key_name, await vault.transit_public_keys(key_name))

        return cls(
            await load(),
            issuer=issuer,
            audience=audience,
            leeway_s=leeway_s,
            clock=clock,
            key_source=load,
            refresh_interval_s=refresh_interval_s,
        )

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._keys)

    async def refresh(self) -> bool:
        """Reload the public keys now; False when this verifier has no key source."""
        if self._source is None:
            return False
        self._last_refresh = time.monotonic()
        self._keys = dict(await self._source())
        self.refreshes += 1
        return True

    async def verify(
        self, token: object, *, revocations: RevocationList | None = None
    ) -> VerifiedToken:
        """The principal and claims of a valid token, else a TokenError subclass.

        Offline, except for one key reload when the token names an unknown key version (and
        none happened within the refresh interval).
        """
        parsed = jws.split(token)
        if parsed.kid not in self._keys:
            await self._refresh_for(parsed.kid)
        return self._verify_parsed(parsed, revocations)

    def verify_sync(
        self, token: object, *, revocations: RevocationList | None = None
    ) -> VerifiedToken:
        """As `verify`, with the keys already held and never any I/O."""
        return self._verify_parsed(jws.split(token), revocations)

    async def _refresh_for(self, kid: str) -> None:
        async with self._refresh_lock:
            # Another task may have refreshed while this one waited for the lock.
            if kid in self._keys or self._source is None:
                return
            if time.monotonic() - self._last_refresh < self._refresh_interval_s:
                return
            try:
                await self.refresh()
            except CryptoError as exc:
                # Tokens with known keys still verify; this one is rejected as unknown.
                log.warning("could not reload the token signing keys: %s", exc)

    def _verify_parsed(
        self, parsed: jws.CompactToken, revocations: RevocationList | None
    ) -> VerifiedToken:
        key = self._keys.get(parsed.kid)
        if key is None:
            raise TokenUnknownKey("the token names a signing key this service does not trust")
        try:
            key.verify(parsed.signature, parsed.signing_input)
        except InvalidSignature:
            raise TokenSignatureInvalid("the token signature does not verify") from None
        claims = TokenClaims.from_json_object(jws.parse_json_object(parsed.payload))
        self._check_claims(claims)
        principal = claims.principal()
        if revocations is not None:
            revocations.check(claims)
        return VerifiedToken(principal, claims)

    def _check_claims(self, claims: TokenClaims) -> None:
        if claims.iss != self._issuer:
            raise TokenIssuerMismatch("the token was not issued by the expected issuer")
        if self._audiences.isdisjoint(claims.aud):
            raise TokenAudienceMismatch("the token is not meant for this service")
        now = self._clock()
        if now >= claims.exp + self._leeway_s:
            raise TokenExpired("the token has expired")
        if now + self._leeway_s < max(claims.nbf, claims.iat):
            raise TokenNotYetValid("the token is not valid yet")
