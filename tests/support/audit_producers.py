"""A producer of audit events for the tests that feed the audit service directly.

Audit stores only what a known producer proved it wrote (docs/audit.md). The tests' own sources
live under "/test/", a namespace the tests' producer ("tests") owns: its key set is made afresh
for each session and written to Vault at set-up, beside the ones the bootstrap made, and the
test services know the namespace (`KNOWN`, or `PRODUCERS_ENV` for a process). Tests that speak
as identity itself sign with identity's key, read from Vault with the root token. An attacker's
records are built without `signed`.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os

import hvac

from moment_audit.config import ProducersConfig
from moment_contracts.envelope import Envelope
from moment_crypto.keysets import KEY_BYTES, VersionedKeys
from moment_crypto.producer_mac import ProducerSigner
from moment_devstack.vault_bootstrap import AUDIT_PRODUCERS_PATH, KV_MOUNT

TEST_PRODUCER = "tests"
TEST_SOURCES = "/test/"
IDENTITY_SOURCE = "/moment/identity"
KNOWN = {IDENTITY_SOURCE: "identity", TEST_SOURCES: TEST_PRODUCER}
PRODUCERS = ProducersConfig(known=KNOWN)
# For a service started as a process: MOMENT_AUDIT_ + these.
PRODUCERS_ENV = {"PRODUCERS__KNOWN": json.dumps(KNOWN)}

_TEST_KEYS = VersionedKeys(current="v1", keys={"v1": os.urandom(KEY_BYTES)})
_KEY_SETS: dict[str, VersionedKeys] = {TEST_PRODUCER: _TEST_KEYS}


def register(client: hvac.Client) -> None:
    """Write the tests' key set to Vault and read identity's (root token: set-up only)."""
    secret = {"current": "v1", "v1": base64.b64encode(_TEST_KEYS.keys["v1"]).decode("ascii")}
    client.secrets.kv.v2.create_or_update_secret(
        path=f"{AUDIT_PRODUCERS_PATH}/{TEST_PRODUCER}", secret=secret, mount_point=KV_MOUNT
    )
    identity = client.secrets.kv.v2.read_secret_version(
        path=f"{AUDIT_PRODUCERS_PATH}/identity", mount_point=KV_MOUNT, raise_on_deleted_version=True
    )
    _KEY_SETS["identity"] = VersionedKeys.parse(identity["data"]["data"], "identity")


def keys_for(source: str) -> VersionedKeys:
    if source == IDENTITY_SOURCE:
        return _KEY_SETS["identity"]
    if not source.startswith(TEST_SOURCES):
        raise ValueError(f"tests sign only as identity or under {TEST_SOURCES}, not {source!r}")
    return _TEST_KEYS


def sign(envelope: Envelope, keys: VersionedKeys | None = None) -> Envelope:
    """The envelope with its producer MAC headers, as its producer would send it."""
    signer = ProducerSigner(keys or keys_for(envelope.source))
    extra = signer.headers_for(envelope.headers(), envelope.data)
    return dataclasses.replace(envelope, extra={**envelope.extra, **extra})


def signed(*envelopes: Envelope) -> list[Envelope]:
    return [sign(e) for e in envelopes]
