"""Which audit records the audit service itself stored: an HMAC-SHA256 over each record's hash.

Whoever holds the audit database can append a correctly chained record (the chain is public
arithmetic), but not this MAC: its key is a versioned key set in Vault KV (keysets.py) that only
the audit service may read. Ingest stores `record_mac` = "<version>:<hex MAC>" with each record;
before signing a checkpoint, and in verify, the MAC of every record since is checked, so a row
the service never inserted is refused rather than signed over.

The MAC covers a domain tag, the record's place in its chain as the columns say it (partition,
seq, previous hash) and its hash, which covers its whole canonical document: a MAC copied from
another row does not fit, nor does a genuine row copied whole under another seq or link (whose
document, hashed, still matches). Pure: no I/O, about a microsecond a record.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from moment_crypto.keysets import VersionedKeys

# Separates these MACs from any other use of the key; the NUL ends the tag.
DOMAIN = b"moment.audit.record-mac.v1\x00"


@dataclass(frozen=True)
class RecordMacs:
    """The audit service's record MAC key set: `mac` for ingest, `verify` for checking."""

    keys: VersionedKeys
    # Per version, an HMAC already fed the domain tag: each record costs a copy and one update.
    _primed: dict[str, hmac.HMAC] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        primed = {v: hmac.new(k, DOMAIN, hashlib.sha256) for v, k in self.keys.keys.items()}
        object.__setattr__(self, "_primed", primed)

    def _digest(self, version: str, message: str) -> str | None:
        primed = self._primed.get(version)
        if primed is None:
            return None
        mac = primed.copy()
        mac.update(message.encode("utf-8", errors="replace"))
        return mac.hexdigest()

    def mac(self, partition: int, seq: int, prev_hash: str, record_hash: str) -> str:
        """The stored form: the current key's version, a colon, the hex MAC."""
        version = self.keys.current
        return (
            f"{version}:{self._digest(version, _message(partition, seq, prev_hash, record_hash))}"
        )

    def verify(
        self, partition: int, seq: int, prev_hash: str, record_hash: str, stored: str | None
    ) -> bool:
        """True only for a MAC made with a held key version over exactly this record."""
        if not stored:
            return False
        version, _, given = stored.partition(":")
        expected = self._digest(version, _message(partition, seq, prev_hash, record_hash))
        return expected is not None and hmac.compare_digest(expected, given)


def _message(partition: int, seq: int, prev_hash: str, record_hash: str) -> str:
    # Integers and hex hashes hold no colon, so the parts can't run into each other.
    return f"{partition}:{seq}:{prev_hash}:{record_hash}"
