"""Bootstrap a development Vault (OpenBao): engines, keys, secrets, policies and AppRoles.

Idempotent: it may run again against the same server. Keys and KV secrets are created only when
missing, never replaced (that would orphan existing ciphertexts and blind indexes); each run
issues a fresh AppRole secret id and rewrites the credential files.

The policies below are the single source of truth; deploy/ policy files are generated from them.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import hvac
import hvac.exceptions

from moment_crypto.keysets import new_key_set

TRANSIT_MOUNT = "transit"
KV_MOUNT = "secret"
APPROLE_MOUNT = "approle"
# Token lifetimes, not secrets.
TOKEN_TTL = "20m"  # noqa: S105
TOKEN_MAX_TTL = "24h"  # noqa: S105

SUBJECT_KEYS = "identity-subject-keys"
TOKEN_SIGNING_KEY = "identity-token-signing"  # noqa: S105 - a key name
AUDIT_CHECKPOINT_KEY = "audit-checkpoints"
BLIND_INDEX_PATH = "moment/identity/blind-index"
PEPPER_PATH = "moment/identity/pepper"
# X25519 private keys that open the sealed personal data storefront clients send.
SEALING_KEY_PATH = "moment/identity/sealing-key"
# Service-account secrets, by account name: identity checks them at service login.
SERVICE_ACCOUNTS_PATH = "moment/identity/service-accounts"
SERVICE_ACCOUNTS = ("storefront", "identity", "consent", "audit")
STOREFRONT = "storefront"
# The storefront's own copy of its secret: the only path its AppRole may read.
STOREFRONT_CREDENTIALS_PATH = "moment/storefront/credentials"
# One HMAC key set per producer of audit.events (moment_crypto.producer_mac): a producer may read
# only its own, the audit service every one, so no one else can write the audit trail.
AUDIT_PRODUCERS_PATH = "moment/audit-producers"
AUDIT_PRODUCERS = ("identity",)
# The audit service's own HMAC key set over the records it stores (moment_crypto.record_mac):
# only audit reads it, so a row slipped into the store by whoever holds the database has no MAC.
AUDIT_RECORDS_PATH = "moment/audit-records"

TRANSIT_KEYS: dict[str, str] = {
    SUBJECT_KEYS: "aes256-gcm96",
    TOKEN_SIGNING_KEY: "ed25519",
    AUDIT_CHECKPOINT_KEY: "ed25519",
}
KEY_SETS = (
    BLIND_INDEX_PATH,
    PEPPER_PATH,
    SEALING_KEY_PATH,
    *(f"{AUDIT_PRODUCERS_PATH}/{producer}" for producer in AUDIT_PRODUCERS),
    AUDIT_RECORDS_PATH,
)

# Every service reads the public token-signing keys: each verifies identity's tokens offline.
POLICIES: dict[str, str] = {
    "identity": f"""
path "{TRANSIT_MOUNT}/datakey/plaintext/{SUBJECT_KEYS}" {{ capabilities = ["update"] }}
path "{TRANSIT_MOUNT}/decrypt/{SUBJECT_KEYS}" {{ capabilities = ["update"] }}
path "{TRANSIT_MOUNT}/sign/{TOKEN_SIGNING_KEY}" {{ capabilities = ["update"] }}
path "{TRANSIT_MOUNT}/verify/{TOKEN_SIGNING_KEY}" {{ capabilities = ["update"] }}
path "{KV_MOUNT}/data/moment/identity/*" {{ capabilities = ["read"] }}
# Identity rotates its own sealing (transport) keys and destroys the old ones: that is what makes
# requests captured from Kafka undecryptable after an erasure.
path "{KV_MOUNT}/data/{SEALING_KEY_PATH}" {{ capabilities = ["read", "create", "update"] }}
path "{KV_MOUNT}/destroy/{SEALING_KEY_PATH}" {{ capabilities = ["update"] }}
path "{TRANSIT_MOUNT}/keys/{TOKEN_SIGNING_KEY}" {{ capabilities = ["read"] }}
path "{KV_MOUNT}/data/{AUDIT_PRODUCERS_PATH}/identity" {{ capabilities = ["read"] }}
""",
    "consent": f"""
path "{KV_MOUNT}/data/moment/consent/*" {{ capabilities = ["read"] }}
path "{TRANSIT_MOUNT}/keys/{TOKEN_SIGNING_KEY}" {{ capabilities = ["read"] }}
""",
    "audit": f"""
path "{TRANSIT_MOUNT}/sign/{AUDIT_CHECKPOINT_KEY}" {{ capabilities = ["update"] }}
path "{TRANSIT_MOUNT}/verify/{AUDIT_CHECKPOINT_KEY}" {{ capabilities = ["update"] }}
# Public keys only: `moment-audit verify` checks checkpoint signatures offline.
path "{TRANSIT_MOUNT}/keys/{AUDIT_CHECKPOINT_KEY}" {{ capabilities = ["read"] }}
path "{TRANSIT_MOUNT}/keys/{TOKEN_SIGNING_KEY}" {{ capabilities = ["read"] }}
# Every producer's MAC key: ingest checks who wrote each event before it is chained.
path "{KV_MOUNT}/data/{AUDIT_PRODUCERS_PATH}/*" {{ capabilities = ["read"] }}
# Its own record MAC key: checkpoints and verify vouch only for records audit stored itself.
path "{KV_MOUNT}/data/{AUDIT_RECORDS_PATH}" {{ capabilities = ["read"] }}
""",
    STOREFRONT: f"""
path "{KV_MOUNT}/data/{STOREFRONT_CREDENTIALS_PATH}" {{ capabilities = ["read"] }}
# Public keys only: to verify tokens and identity's endorsement of its sealing key.
path "{TRANSIT_MOUNT}/keys/{TOKEN_SIGNING_KEY}" {{ capabilities = ["read"] }}
""",
}


class VaultBootstrapError(RuntimeError):
    """The development Vault could not be prepared."""


@dataclass(frozen=True)
class ServiceCredentials:
    """Where a service's AppRole credentials were written (both files are mode 0600)."""

    service: str
    role_name: str
    policy: str
    role_id_file: Path
    secret_id_file: Path


def policy_name(service: str) -> str:
    return f"moment-{service}"


def wait_until_ready(client: hvac.Client, timeout_s: float = 15.0) -> None:
    """Block until Vault answers as initialised, unsealed and active."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            health = client.sys.read_health_status(method="GET")
        except (hvac.exceptions.VaultError, OSError):
            health = None
        if isinstance(health, dict) and not health.get("sealed", True):
            return
        time.sleep(0.1)
    raise VaultBootstrapError(f"Vault at {client.url} was not ready within {timeout_s:.0f}s")


def _enable_engines(client: hvac.Client) -> None:
    mounts = client.sys.list_mounted_secrets_engines()["data"]
    if f"{TRANSIT_MOUNT}/" not in mounts:
        client.sys.enable_secrets_engine("transit", path=TRANSIT_MOUNT)
    kv = mounts.get(f"{KV_MOUNT}/")
    if kv is None:
        client.sys.enable_secrets_engine("kv", path=KV_MOUNT, options={"version": "2"})
    elif (kv.get("options") or {}).get("version") != "2":
        raise VaultBootstrapError(f"the {KV_MOUNT}/ mount exists but is not KV version 2")
    if f"{APPROLE_MOUNT}/" not in client.sys.list_auth_methods()["data"]:
        client.sys.enable_auth_method("approle", path=APPROLE_MOUNT)


def _create_keys(client: hvac.Client) -> None:
    for name, key_type in TRANSIT_KEYS.items():
        try:
            existing = client.secrets.transit.read_key(name, mount_point=TRANSIT_MOUNT)
        except hvac.exceptions.InvalidPath:
            client.secrets.transit.create_key(name, key_type=key_type, mount_point=TRANSIT_MOUNT)
            continue
        if existing["data"]["type"] != key_type:
            raise VaultBootstrapError(f"transit key {name} exists with another type")


def _create_key_sets(client: hvac.Client) -> None:
    for path in KEY_SETS:
        try:
            client.secrets.kv.v2.read_secret_version(
                path=path, mount_point=KV_MOUNT, raise_on_deleted_version=True
            )
        except hvac.exceptions.InvalidPath:
            client.secrets.kv.v2.create_or_update_secret(
                path=path, secret=new_key_set(), mount_point=KV_MOUNT, cas=0
            )


def _read_secret(client: hvac.Client, path: str) -> dict[str, str] | None:
    try:
        response = client.secrets.kv.v2.read_secret_version(
            path=path, mount_point=KV_MOUNT, raise_on_deleted_version=True
        )
    except hvac.exceptions.InvalidPath:
        return None
    return {str(k): str(v) for k, v in response["data"]["data"].items()}


def _create_service_accounts(client: hvac.Client) -> None:
    """A random secret per service account, created once (accounts added later get theirs),
    and the storefront's own copy, kept in step with it."""
    existing = _read_secret(client, SERVICE_ACCOUNTS_PATH) or {}
    missing = {n: secrets.token_urlsafe(32) for n in SERVICE_ACCOUNTS if not existing.get(n)}
    accounts = existing | missing
    if missing:
        client.secrets.kv.v2.create_or_update_secret(
            path=SERVICE_ACCOUNTS_PATH, secret=accounts, mount_point=KV_MOUNT
        )
    storefront = {"service": STOREFRONT, "secret": accounts[STOREFRONT]}
    if _read_secret(client, STOREFRONT_CREDENTIALS_PATH) != storefront:
        client.secrets.kv.v2.create_or_update_secret(
            path=STOREFRONT_CREDENTIALS_PATH, secret=storefront, mount_point=KV_MOUNT
        )


def _write_private(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Created 0600 from the start, so the secret is never readable by others, even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value)
    path.chmod(0o600)


def _service_role(client: hvac.Client, service: str, creds_dir: Path) -> ServiceCredentials:
    if service not in POLICIES:
        raise VaultBootstrapError(f"no policy is defined for service {service!r}")
    policy = policy_name(service)
    client.sys.create_or_update_policy(name=policy, policy=POLICIES[service].strip())
    client.auth.approle.create_or_update_approle(
        role_name=service,
        token_policies=[policy],
        token_ttl=TOKEN_TTL,
        token_max_ttl=TOKEN_MAX_TTL,
        token_type="service",  # noqa: S106 - a token kind
        mount_point=APPROLE_MOUNT,
    )
    role_id = client.auth.approle.read_role_id(service, mount_point=APPROLE_MOUNT)["data"]
    secret = client.auth.approle.generate_secret_id(service, mount_point=APPROLE_MOUNT)["data"]
    target = creds_dir / service
    creds = ServiceCredentials(service, service, policy, target / "role_id", target / "secret_id")
    _write_private(creds.role_id_file, role_id["role_id"])
    _write_private(creds.secret_id_file, secret["secret_id"])
    return creds


def bootstrap_vault(
    url: str,
    root_token: str,
    creds_dir: Path,
    services: Iterable[str] = ("identity", "consent", "audit", STOREFRONT),
) -> dict[str, ServiceCredentials]:
    """Prepare Vault for the given services; returns where each one's credentials are."""
    client = hvac.Client(url=url, token=root_token, timeout=10)
    try:
        wait_until_ready(client)
        _enable_engines(client)
        _create_keys(client)
        _create_key_sets(client)
        _create_service_accounts(client)
        return {s: _service_role(client, s, creds_dir) for s in services}
    except hvac.exceptions.VaultError as exc:
        raise VaultBootstrapError(
            f"Vault bootstrap failed: {exc.errors or type(exc).__name__}"
        ) from None
    finally:
        client.adapter.close()
