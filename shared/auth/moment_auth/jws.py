"""JWS compact serialization with EdDSA (RFC 7515, RFC 8037), parsed strictly.

Only the exact header this package issues is accepted: {"alg":"EdDSA","kid":...,"typ":"JWT"}.
Anything else (another algorithm, "none", extra or critical parameters) is refused before any
key is looked up, which rules out algorithm-confusion attacks by construction.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from moment_auth.claims import canonical_json
from moment_auth.errors import TokenAlgorithmRejected, TokenMalformed

ALGORITHM = "EdDSA"
TOKEN_TYPE = "JWT"  # noqa: S105 - the JOSE "typ" value
SIGNATURE_BYTES = 64
# Far above any token we issue; bounds the work an attacker can make a verifier do.
MAX_TOKEN_CHARS = 4096

_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_KID = re.compile(r"(?P<name>[A-Za-z0-9_-]{1,128}):v(?P<version>[1-9][0-9]{0,8})")
_HEADER_KEYS = frozenset({"alg", "kid", "typ"})


@dataclass(frozen=True)
class CompactToken:
    """A token split into its parts; the header is checked, the payload not yet parsed."""

    kid: str
    signing_input: bytes
    payload: bytes
    signature: bytes


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(segment: str) -> bytes:
    """Strict base64url without padding: a segment has exactly one accepted spelling."""
    if not _SEGMENT.fullmatch(segment):
        raise TokenMalformed("a token segment is not base64url")
    try:
        data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise TokenMalformed("a token segment is not base64url") from None
    # Unused trailing bits would let one signature be written several ways; refuse all but one.
    if b64url_encode(data) != segment:
        raise TokenMalformed("a token segment is not canonical base64url")
    return data


def kid_for(key_name: str, version: int) -> str:
    return f"{key_name}:v{version}"


def parse_kid(kid: str) -> tuple[str, int] | None:
    """(key name, version) of a kid this package writes, or None for anything else."""
    match = _KID.fullmatch(kid)
    if match is None:
        return None
    return match["name"], int(match["version"])


def header_for(kid: str) -> dict[str, str]:
    return {"alg": ALGORITHM, "kid": kid, "typ": TOKEN_TYPE}


def signing_input(header: Mapping[str, Any], payload: bytes) -> bytes:
    """ASCII(b64url(header) "." b64url(payload)): the bytes the signature covers."""
    return f"{b64url_encode(canonical_json(header))}.{b64url_encode(payload)}".encode("ascii")


def compact(signing_input_bytes: bytes, signature: bytes) -> str:
    return f"{signing_input_bytes.decode('ascii')}.{b64url_encode(signature)}"


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise TokenMalformed("a token segment repeats a JSON member")
    return result


def _reject_constant(_name: str) -> Any:
    raise TokenMalformed("a token segment holds a non-finite number")


def parse_json_object(data: bytes) -> dict[str, Any]:
    """A JSON object without duplicate members or NaN/Infinity, else TokenMalformed."""
    try:
        value = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_reject_duplicates,
            parse_constant=_reject_constant,
        )
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise TokenMalformed("a token segment is not JSON") from None
    if not isinstance(value, dict):
        raise TokenMalformed("a token segment is not a JSON object")
    return value


def _checked_kid(header: dict[str, Any]) -> str:
    alg = header.get("alg")
    # Checked first and exactly: "none", "HS256", "eddsa" and friends never reach key lookup.
    if not isinstance(alg, str) or alg != ALGORITHM:
        raise TokenAlgorithmRejected("the token algorithm is not accepted")
    if set(header) != _HEADER_KEYS or header["typ"] != TOKEN_TYPE:
        raise TokenMalformed("the token header is not the expected one")
    kid = header["kid"]
    if not isinstance(kid, str) or parse_kid(kid) is None:
        raise TokenMalformed("the token header names no valid key id")
    return kid


def split(token: object) -> CompactToken:
    """The parts of a compact JWS, with the header validated; the signature is not checked."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        raise TokenMalformed("the token is not a compact JWS string of acceptable length")
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenMalformed("the token does not have three segments")
    header_b64, payload_b64, signature_b64 = parts
    kid = _checked_kid(parse_json_object(b64url_decode(header_b64)))
    payload = b64url_decode(payload_b64)
    signature = b64url_decode(signature_b64)
    if len(signature) != SIGNATURE_BYTES:
        raise TokenMalformed("the token signature has the wrong length")
    return CompactToken(
        kid=kid,
        signing_input=f"{header_b64}.{payload_b64}".encode("ascii"),
        payload=payload,
        signature=signature,
    )
