"""Who wrote an audit event: a per-producer HMAC-SHA256 over the record, keyed from Vault KV.

Anyone who can write to a Kafka topic can write any header, so a record's `ce_source` proves
nothing. Each producer holds a versioned key set (keysets.py) that only it and the audit service
may read; it adds two headers to every event it creates, the key's version and the MAC, and audit
checks them before anything else is done with the record.

The MAC covers a canonical encoding of the CloudEvents attributes that say what the event is
(`COVERED`, each as the exact header bytes, absent told apart from empty), the key's version and
the exact body bytes, each length-prefixed, after a domain tag. Changing, adding or dropping any
of them, moving the body under another id (a replay) or signing with another key breaks it.
Pure: no I/O, microseconds a record.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from moment_crypto.errors import CryptoError
from moment_crypto.keysets import VersionedKeys

KID_HEADER = "moment_producer_kid"
MAC_HEADER = "moment_producer_mac"
# The attributes that say what an event is and who it is about. Trace headers are left out: the
# relay may rewrite them.
COVERED = (
    "ce_specversion",
    "ce_id",
    "ce_source",
    "ce_type",
    "ce_subject",
    "ce_time",
    "ce_dataschema",
)
_DOMAIN = b"moment.producer-mac.v1"
_WATCHED = frozenset((*COVERED, KID_HEADER, MAC_HEADER))
_ABSENT = b"\x00"
_PRESENT = b"\x01"

Headers = Iterable[tuple[str, bytes | None]]


class ProducerNotAuthenticated(CryptoError):
    """The record does not prove it comes from a known producer. `code` says why, in a word."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _field(value: bytes | None) -> bytes:
    if value is None:
        return _ABSENT
    return _PRESENT + struct.pack(">Q", len(value)) + value


def canonical(headers: Mapping[str, bytes | None], kid: bytes, body: bytes) -> bytes:
    """The bytes the MAC is computed over: each part length-prefixed, so none can run into the
    next."""
    parts = [_field(_DOMAIN), *(_field(headers.get(n)) for n in COVERED), _field(kid), _field(body)]
    return b"".join(parts)


def compute(key: bytes, headers: Mapping[str, bytes | None], kid: bytes, body: bytes) -> bytes:
    return hmac.new(key, canonical(headers, kid, body), hashlib.sha256).digest()


def _single(headers: Headers) -> dict[str, bytes | None]:
    """The watched headers by name; a second copy of one is refused, not silently chosen."""
    found: dict[str, bytes | None] = {}
    for name, value in headers:
        if name not in _WATCHED:
            continue
        if name in found:
            raise ProducerNotAuthenticated("duplicate-header", f"header {name} appears twice")
        if value is not None and not isinstance(value, bytes):
            raise ProducerNotAuthenticated("malformed", f"header {name} is not bytes")
        found[name] = value
    return found


@dataclass(frozen=True)
class ProducerSigner:
    """A producer's side: the two headers for a record, with the current key."""

    keys: VersionedKeys

    def headers_for(self, headers: Headers, body: bytes) -> dict[str, str]:
        kid = self.keys.current
        mac = compute(self.keys.current_key, _single(headers), kid.encode(), body)
        return {KID_HEADER: kid, MAC_HEADER: mac.hex()}


@dataclass(frozen=True)
class ProducerVerifier:
    """Audit's side. `known` maps a source to its producer's name: an exact source, or a prefix
    ending in "/" for a producer that owns a namespace of sources. `keys` holds each producer's
    key set. Both come from configuration and Vault, never from what arrives."""

    known: Mapping[str, str]
    keys: Mapping[str, VersionedKeys]

    def producer_of(self, source: str) -> str | None:
        if source in self.known:
            return self.known[source]
        prefixes = [p for p in self.known if p.endswith("/") and source.startswith(p)]
        return self.known[max(prefixes, key=len)] if prefixes else None

    def check(self, headers: Headers, body: bytes) -> str:
        """The producer's name if the record proves it; else ProducerNotAuthenticated."""
        found = _single(headers)
        source = found.get("ce_source")
        producer = None if source is None else self.producer_of(source.decode(errors="replace"))
        if producer is None:
            raise ProducerNotAuthenticated("unknown-producer", "ce_source is not a known producer")
        kid, mac = found.get(KID_HEADER), found.get(MAC_HEADER)
        if kid is None or mac is None:
            raise ProducerNotAuthenticated("missing-mac", "the record carries no producer MAC")
        key_set = self.keys.get(producer)
        key = None if key_set is None else key_set.keys.get(kid.decode(errors="replace"))
        if key is None:
            raise ProducerNotAuthenticated("unknown-key", "the producer key id is not known")
        if not hmac.compare_digest(compute(key, found, kid, body).hex().encode(), mac):
            raise ProducerNotAuthenticated("bad-mac", "the producer MAC does not match")
        return producer
