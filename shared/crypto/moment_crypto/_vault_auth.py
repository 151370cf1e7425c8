"""Blocking login calls for the three supported auth methods; VaultClient runs them in a thread.

Credentials are read from their files at every login, so a rotated secret id, a refreshed
service-account JWT or a token rewritten by an agent is picked up without a restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
from pydantic import SecretStr

from moment_crypto._vault_errors import vault_errors
from moment_crypto.config import VaultConfig
from moment_crypto.errors import VaultConfigError, VaultPermissionDenied


@dataclass(frozen=True)
class LoginResult:
    """A fresh client token; ttl_s is 0 for tokens that never expire (root, periodic none)."""

    token: SecretStr
    ttl_s: int
    renewable: bool


def read_credential(path: Path | None, what: str) -> SecretStr:
    if path is None:
        raise VaultConfigError(f"no {what} file is configured")
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise VaultConfigError(
            f"cannot read the Vault {what} file {path}: {exc.strerror or 'unreadable'}"
        ) from None
    if not value:
        raise VaultConfigError(f"the Vault {what} file {path} is empty")
    return SecretStr(value)


def _from_auth(response: dict[str, Any]) -> LoginResult:
    auth = response["auth"]
    return LoginResult(
        token=SecretStr(str(auth["client_token"])),
        ttl_s=int(auth.get("lease_duration") or 0),
        renewable=bool(auth.get("renewable")),
    )


def _approle(hv: hvac.Client, config: VaultConfig) -> LoginResult:
    role_id = read_credential(config.role_id_file, "AppRole role id")
    secret_id = read_credential(config.secret_id_file, "AppRole secret id")
    response = hv.auth.approle.login(
        role_id=role_id.get_secret_value(),
        secret_id=secret_id.get_secret_value(),
        use_token=False,
        mount_point=config.approle_mount,
    )
    return _from_auth(response)


def _kubernetes(hv: hvac.Client, config: VaultConfig) -> LoginResult:
    jwt = read_credential(config.kubernetes_jwt_path, "Kubernetes service-account token")
    response = hv.auth.kubernetes.login(
        role=config.kubernetes_role,
        jwt=jwt.get_secret_value(),
        use_token=False,
        mount_point=config.kubernetes_mount,
    )
    return _from_auth(response)


def _token(hv: hvac.Client, config: VaultConfig) -> LoginResult:
    token = read_credential(config.token_file, "token")
    # A separate client so the lookup carries the new token, not the one currently in use.
    probe = hvac.Client(
        url=config.url,
        token=token.get_secret_value(),
        timeout=config.request_timeout_s,
        session=hv.session,
    )
    data = probe.auth.token.lookup_self()["data"]
    return LoginResult(
        token=token, ttl_s=int(data.get("ttl") or 0), renewable=bool(data.get("renewable"))
    )


_METHODS = {"approle": _approle, "kubernetes": _kubernetes, "token": _token}


def login(hv: hvac.Client, config: VaultConfig) -> LoginResult:
    """Log in with the configured method; a rejected credential is VaultPermissionDenied."""
    try:
        return _METHODS[config.auth_method](hv, config)
    except (
        hvac.exceptions.InvalidRequest,
        hvac.exceptions.Unauthorized,
        hvac.exceptions.Forbidden,
    ) as exc:
        reason = "; ".join(vault_errors(exc)) or "credential rejected"
        raise VaultPermissionDenied(
            f"Vault rejected the {config.auth_method} login: {reason}"
        ) from None
