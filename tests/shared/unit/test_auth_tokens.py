"""TokenSigner and TokenVerifier with a local Ed25519 key standing in for Vault Transit."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import traceback
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from moment_auth import (
    IssuedToken,
    Principal,
    RevocationList,
    Role,
    ServiceAccount,
    TokenAlgorithmRejected,
    TokenAudienceMismatch,
    TokenError,
    TokenExpired,
    TokenIssuerMismatch,
    TokenMalformed,
    TokenNotYetValid,
    TokenRevoked,
    TokenSignatureInvalid,
    TokenSigner,
    TokenSigningFailed,
    TokenUnknownKey,
    TokenVerifier,
    jws,
    public_keys_by_kid,
)
from moment_crypto import VaultUnavailable

KEY = "identity-token-signing"
NOW = 1_800_000_000.0


class FakeClock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class LocalTransit:
    """Signs as Transit's ed25519 keys do ("vault:vN:<base64>"), with keys held in memory."""

    def __init__(self) -> None:
        self.private: dict[int, Ed25519PrivateKey] = {1: Ed25519PrivateKey.generate()}
        self.sign_calls = 0
        self.key_reads = 0
        self.fail_reads = False

    def rotate(self) -> None:
        self.private[max(self.private) + 1] = Ed25519PrivateKey.generate()

    async def sign(self, key_name: str, data: bytes) -> str:
        self.sign_calls += 1
        version = max(self.private)
        signature = self.private[version].sign(data)
        return f"vault:v{version}:{base64.b64encode(signature).decode()}"

    async def transit_public_keys(self, key_name: str) -> dict[int, bytes]:
        self.key_reads += 1
        if self.fail_reads:
            raise VaultUnavailable("Vault is unreachable (test)")
        return {
            v: k.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            for v, k in self.private.items()
        }


@pytest.fixture
def transit() -> LocalTransit:
    return LocalTransit()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def signer(transit: LocalTransit, clock: FakeClock) -> TokenSigner:
    return TokenSigner(transit, KEY, ttl_s=900, clock=clock)


@pytest.fixture
async def verifier(transit: LocalTransit, clock: FakeClock) -> TokenVerifier:
    return await TokenVerifier.from_vault(transit, KEY, audience="moment", clock=clock)


def customer(sv: int = 0) -> Principal:
    return Principal.customer("0b7c6f3e-2a6e-4f1b-9a57-0d7f3c2b9e11", session_version=sv)


def segments(token: str) -> list[dict[str, Any]]:
    return [json.loads(jws.b64url_decode(part)) for part in token.split(".")[:2]]


def forge(key: Ed25519PrivateKey, header: dict[str, Any], payload: dict[str, Any] | bytes) -> str:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    data = jws.signing_input(header, body)
    return jws.compact(data, key.sign(data))


def claims_of(token: str) -> dict[str, Any]:
    return segments(token)[1]


# -- round trip and format ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "principal",
    [
        customer(3),
        Principal.staff("staff-0042", [Role.PRIVACY_OFFICER, Role.LEGAL_COUNSEL]),
        Principal.service(ServiceAccount.STOREFRONT),
    ],
)
async def test_round_trip(
    signer: TokenSigner, verifier: TokenVerifier, principal: Principal
) -> None:
    issued = await signer.issue(principal)
    verified = await verifier.verify(issued.token)
    assert verified.principal == principal
    assert verified.claims.jti == issued.jti
    assert verified.claims.exp == int(NOW) + 900
    assert issued.expires_at.timestamp() == int(NOW) + 900


async def test_wire_format(signer: TokenSigner) -> None:
    issued = await signer.issue(customer(2))
    header_b64, payload_b64, signature_b64 = issued.token.split(".")
    assert "=" not in issued.token
    assert json.loads(jws.b64url_decode(header_b64)) == {
        "alg": "EdDSA",
        "typ": "JWT",
        "kid": "identity-token-signing:v1",
    }
    payload = jws.b64url_decode(payload_b64)
    claims = json.loads(payload)
    assert payload == json.dumps(claims, sort_keys=True, separators=(",", ":")).encode()
    assert claims["iss"] == "moment-identity"
    assert claims["aud"] == "moment"
    assert (claims["sub"], claims["kind"], claims["sv"], claims["roles"]) == (
        customer().id,
        "customer",
        2,
        [],
    )
    assert claims["iat"] == claims["nbf"] == claims["exp"] - 900
    assert len(jws.b64url_decode(signature_b64)) == 64


async def test_issued_token_repr_hides_the_token(signer: TokenSigner) -> None:
    issued = await signer.issue(customer())
    assert issued.token not in repr(issued)
    assert isinstance(issued, IssuedToken)


async def test_several_audiences(signer: TokenSigner, transit: LocalTransit) -> None:
    issued = await signer.issue(customer(), audience=["consent", "audit"])
    assert claims_of(issued.token)["aud"] == ["consent", "audit"]
    audit = await TokenVerifier.from_vault(transit, KEY, audience="audit", clock=FakeClock())
    assert (await audit.verify(issued.token)).claims.aud == ("consent", "audit")
    moment = await TokenVerifier.from_vault(transit, KEY, audience="moment", clock=FakeClock())
    with pytest.raises(TokenAudienceMismatch):
        await moment.verify(issued.token)


# -- tampering ---------------------------------------------------------------------------------


async def test_tampered_payload(signer: TokenSigner, verifier: TokenVerifier) -> None:
    header, _, signature = (await signer.issue(customer())).token.split(".")
    claims = claims_of((await signer.issue(customer())).token)
    claims["sv"] = 99
    payload = jws.b64url_encode(json.dumps(claims).encode())
    with pytest.raises(TokenSignatureInvalid):
        await verifier.verify(f"{header}.{payload}.{signature}")


async def test_tampered_signature(signer: TokenSigner, verifier: TokenVerifier) -> None:
    header, payload, signature = (await signer.issue(customer())).token.split(".")
    flipped = bytearray(jws.b64url_decode(signature))
    flipped[0] ^= 1
    with pytest.raises(TokenSignatureInvalid):
        await verifier.verify(f"{header}.{payload}.{jws.b64url_encode(bytes(flipped))}")


@pytest.mark.parametrize("alg", ["none", "None", "HS256", "RS256", "ES256", "eddsa", "Ed25519", 1])
async def test_other_algorithms_are_rejected(
    signer: TokenSigner, verifier: TokenVerifier, alg: object
) -> None:
    _, payload, signature = (await signer.issue(customer())).token.split(".")
    header = jws.b64url_encode(json.dumps({"alg": alg, "typ": "JWT", "kid": f"{KEY}:v1"}).encode())
    for candidate in (f"{header}.{payload}.{signature}", f"{header}.{payload}."):
        with pytest.raises(TokenAlgorithmRejected):
            await verifier.verify(candidate)


async def test_hs256_keyed_with_the_public_key_is_rejected(
    signer: TokenSigner, verifier: TokenVerifier, transit: LocalTransit
) -> None:
    public = (await transit.transit_public_keys(KEY))[1]
    _, payload, _ = (await signer.issue(customer())).token.split(".")
    header = jws.b64url_encode(
        json.dumps({"alg": "HS256", "typ": "JWT", "kid": f"{KEY}:v1"}).encode()
    )
    mac = hmac.new(public, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    with pytest.raises(TokenAlgorithmRejected):
        await verifier.verify(f"{header}.{payload}.{jws.b64url_encode(mac)}")


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "EdDSA", "typ": "JWT", "kid": f"{KEY}:v1", "crit": ["exp"]},
        {"alg": "EdDSA", "typ": "JWT", "kid": f"{KEY}:v1", "jku": "http://attacker"},
        {"alg": "EdDSA", "typ": "JOSE", "kid": f"{KEY}:v1"},
        {"alg": "EdDSA", "typ": "JWT"},
        {"alg": "EdDSA", "typ": "JWT", "kid": "../../etc/passwd"},
    ],
)
async def test_unexpected_headers_are_malformed(
    transit: LocalTransit, verifier: TokenVerifier, signer: TokenSigner, header: dict[str, Any]
) -> None:
    claims = claims_of((await signer.issue(customer())).token)
    with pytest.raises(TokenMalformed):
        await verifier.verify(forge(transit.private[1], header, claims))


async def test_unknown_kid(transit: LocalTransit, signer: TokenSigner) -> None:
    claims = claims_of((await signer.issue(customer())).token)
    stranger = Ed25519PrivateKey.generate()
    for kid in (f"{KEY}:v7", "other-key:v1"):
        token = forge(stranger, jws.header_for(kid), claims)
        offline = TokenVerifier(public_keys_by_kid(KEY, await transit.transit_public_keys(KEY)))
        with pytest.raises(TokenUnknownKey):
            offline.verify_sync(token)
        with pytest.raises(TokenUnknownKey):
            await offline.verify(token)


@pytest.mark.parametrize(
    "token",
    [
        None,
        b"a.b.c",
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "x" * 5000,
        "eyJhbGciOiJFZERTQSJ9.e30=.AAAA",
        "eyJh bGciOiJFZERTQSJ9.e30.AAAA",
        "W10.e30.AAAA",  # header is a JSON array
        "bnVsbA.e30.AAAA",  # header is null
    ],
)
async def test_malformed_structure(verifier: TokenVerifier, token: object) -> None:
    with pytest.raises(TokenMalformed):
        await verifier.verify(token)


async def test_non_canonical_base64_signature(signer: TokenSigner, verifier: TokenVerifier) -> None:
    header, payload, signature = (await signer.issue(customer())).token.split(".")
    # 64 bytes take 86 characters; the last one carries 2 unused bits a forger could set.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(signature[-1])
    variant = signature[:-1] + alphabet[last ^ 1]
    assert jws.b64url_decode(signature) == base64.urlsafe_b64decode(variant + "==")
    with pytest.raises(TokenMalformed):
        await verifier.verify(f"{header}.{payload}.{variant}")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda c: c.update(extra="x"),
        lambda c: c.update(roles=["admin"]),  # a customer with a staff role
        lambda c: c.update(kind="service"),  # service principal with a subject id
        lambda c: c.update(sv=True),
        lambda c: c.update(exp=float(c["exp"])),
        lambda c: c.update(exp=c["iat"]),
        lambda c: c.update(aud=[]),
        lambda c: c.pop("jti"),
        lambda c: c.update(sub="a\nb"),
    ],
)
async def test_signed_but_invalid_claims(
    transit: LocalTransit, signer: TokenSigner, verifier: TokenVerifier, mutate: Any
) -> None:
    claims = claims_of((await signer.issue(customer())).token)
    mutate(claims)
    with pytest.raises(TokenMalformed):
        await verifier.verify(forge(transit.private[1], jws.header_for(f"{KEY}:v1"), claims))


async def test_duplicate_claims_are_malformed(
    transit: LocalTransit, signer: TokenSigner, verifier: TokenVerifier
) -> None:
    claims = claims_of((await signer.issue(customer())).token)
    body = json.dumps(claims)[:-1] + ',"sv":7}'
    token = forge(transit.private[1], jws.header_for(f"{KEY}:v1"), body.encode())
    with pytest.raises(TokenMalformed):
        await verifier.verify(token)


# -- time, issuer, audience ---------------------------------------------------------------------


async def test_expiry_with_leeway(
    signer: TokenSigner, verifier: TokenVerifier, clock: FakeClock
) -> None:
    issued = await signer.issue(customer())
    clock.now = NOW + 900 + 29
    await verifier.verify(issued.token)
    clock.now = NOW + 900 + 30
    with pytest.raises(TokenExpired):
        await verifier.verify(issued.token)


async def test_not_yet_valid(
    signer: TokenSigner, verifier: TokenVerifier, clock: FakeClock
) -> None:
    issued = await signer.issue(customer())
    clock.now = NOW - 30
    await verifier.verify(issued.token)
    clock.now = NOW - 31
    with pytest.raises(TokenNotYetValid):
        await verifier.verify(issued.token)


async def test_wrong_issuer_and_audience(
    transit: LocalTransit, signer: TokenSigner, clock: FakeClock
) -> None:
    token = (await signer.issue(customer())).token
    other_issuer = await TokenVerifier.from_vault(transit, KEY, issuer="someone", clock=clock)
    with pytest.raises(TokenIssuerMismatch):
        await other_issuer.verify(token)
    consent_only = await TokenVerifier.from_vault(transit, KEY, audience="consent", clock=clock)
    with pytest.raises(TokenAudienceMismatch):
        await consent_only.verify(token)
    either = await TokenVerifier.from_vault(
        transit, KEY, audience={"consent", "moment"}, clock=clock
    )
    await either.verify(token)


# -- revocation --------------------------------------------------------------------------------


async def test_revoked_by_session_version(signer: TokenSigner, verifier: TokenVerifier) -> None:
    old = (await signer.issue(customer(sv=1))).token
    revocations = RevocationList()
    await verifier.verify(old, revocations=revocations)
    revocations.record(customer().id, min_session_version=2)
    with pytest.raises(TokenRevoked):
        await verifier.verify(old, revocations=revocations)
    with pytest.raises(TokenRevoked):
        verifier.verify_sync(old, revocations=revocations)
    await verifier.verify(old)  # revocation applies only where the list is passed
    fresh = (await signer.issue(customer(sv=2))).token
    assert (await verifier.verify(fresh, revocations=revocations)).principal.session_version == 2


async def test_revoked_by_issue_time(
    signer: TokenSigner, verifier: TokenVerifier, clock: FakeClock
) -> None:
    old = (await signer.issue(customer())).token
    revocations = RevocationList(clock=clock)
    revocations.record(customer().id, issued_before=NOW + 10)
    with pytest.raises(TokenRevoked):
        await verifier.verify(old, revocations=revocations)
    clock.now = NOW + 11
    await verifier.verify((await signer.issue(customer())).token, revocations=revocations)


# -- errors never carry the token --------------------------------------------------------------


async def test_errors_never_contain_the_token(
    transit: LocalTransit, signer: TokenSigner, verifier: TokenVerifier, clock: FakeClock
) -> None:
    token = (await signer.issue(customer(sv=1))).token
    header, payload, signature = token.split(".")
    revocations = RevocationList()
    revocations.record(customer().id, min_session_version=5)
    bad_alg = jws.b64url_encode(b'{"alg":"none","kid":"identity-token-signing:v1","typ":"JWT"}')
    cases: list[tuple[str, RevocationList | None, float]] = [
        (token, revocations, NOW),
        (token, None, NOW + 10_000),
        (token, None, NOW - 10_000),
        (f"{header}.{payload}.{signature[::-1]}", None, NOW),
        (f"{bad_alg}.{payload}.{signature}", None, NOW),
        (f"{header}.{payload}X.{signature}", None, NOW),
        (f"{header}.{payload}", None, NOW),
    ]
    for candidate, revs, now in cases:
        clock.now = now
        with pytest.raises(TokenError) as caught:
            await verifier.verify(candidate, revocations=revs)
        rendered = "".join(traceback.format_exception(caught.value))
        for secret in (candidate, header, payload, signature, customer().id):
            assert secret not in rendered


# -- signer and key rotation -------------------------------------------------------------------


async def test_signer_follows_rotation(
    transit: LocalTransit, signer: TokenSigner, verifier: TokenVerifier
) -> None:
    first = await signer.issue(customer())
    transit.rotate()
    second = await signer.issue(customer())
    assert segments(second.token)[0]["kid"] == f"{KEY}:v2"
    # The first signature after the rotation was made with v2 under a v1 kid, then redone.
    assert transit.sign_calls == 3
    third = await signer.issue(customer())
    assert segments(third.token)[0]["kid"] == f"{KEY}:v2"
    assert transit.sign_calls == 4
    assert verifier.refreshes == 0
    await verifier.verify(second.token)
    assert verifier.refreshes == 1
    await verifier.verify(first.token)


async def test_signer_rejects_foreign_signatures(transit: LocalTransit, clock: FakeClock) -> None:
    class WrongFormat(LocalTransit):
        async def sign(self, key_name: str, data: bytes) -> str:
            return "vault:v1:" + base64.b64encode(b"x" * 70).decode()

    class WrongKey(LocalTransit):
        async def sign(self, key_name: str, data: bytes) -> str:
            signature = Ed25519PrivateKey.generate().sign(data)
            return f"vault:v1:{base64.b64encode(signature).decode()}"

    for backend in (WrongFormat(), WrongKey()):
        with pytest.raises(TokenSigningFailed):
            await TokenSigner(backend, KEY, clock=clock).issue(customer())


async def test_refresh_is_throttled_and_shared(
    transit: LocalTransit, signer: TokenSigner, verifier: TokenVerifier
) -> None:
    claims = claims_of((await signer.issue(customer())).token)
    reads = transit.key_reads
    stranger = Ed25519PrivateKey.generate()
    bogus = forge(stranger, jws.header_for(f"{KEY}:v9"), claims)
    results = await asyncio.gather(
        *(verifier.verify(bogus) for _ in range(20)), return_exceptions=True
    )
    assert all(isinstance(r, TokenUnknownKey) for r in results)
    with pytest.raises(TokenUnknownKey):
        await verifier.verify(bogus)
    assert transit.key_reads - reads == 1


async def test_refresh_after_the_interval(transit: LocalTransit, signer: TokenSigner) -> None:
    verifier = await TokenVerifier.from_vault(
        transit, KEY, refresh_interval_s=0.05, clock=FakeClock()
    )
    claims = claims_of((await signer.issue(customer())).token)
    bogus = forge(Ed25519PrivateKey.generate(), jws.header_for(f"{KEY}:v9"), claims)
    for _ in range(2):
        with pytest.raises(TokenUnknownKey):
            await verifier.verify(bogus)
    assert verifier.refreshes == 1
    await asyncio.sleep(0.06)
    transit.rotate()
    await verifier.verify((await signer.issue(customer())).token)
    assert verifier.refreshes == 2


async def test_refresh_failure_rejects_only_the_unknown_kid(
    transit: LocalTransit, signer: TokenSigner, verifier: TokenVerifier
) -> None:
    known = (await signer.issue(customer())).token
    transit.rotate()
    newer = (await signer.issue(customer())).token
    transit.fail_reads = True
    with pytest.raises(TokenUnknownKey):
        await verifier.verify(newer)
    await verifier.verify(known)
