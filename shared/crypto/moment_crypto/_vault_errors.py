"""Translation of hvac and requests exceptions into the typed errors of moment_crypto.

hvac exception texts can embed whole response bodies (a failed batch decrypt carries the
plaintext of the items that succeeded), so only Vault's short `errors` strings are kept and the
original exception is never chained.
"""

from __future__ import annotations

import hvac.exceptions
import requests

from moment_crypto.errors import (
    CryptoError,
    VaultPermissionDenied,
    VaultRequestFailed,
    VaultSealed,
    VaultUnavailable,
)

_MAX_DETAIL = 300

# Exceptions a call into hvac may raise; everything else is a programming error.
HVAC_FAILURES: tuple[type[Exception], ...] = (
    hvac.exceptions.VaultError,
    requests.RequestException,
)


def vault_errors(exc: hvac.exceptions.VaultError) -> tuple[str, ...]:
    errors = exc.errors
    if isinstance(errors, list) and all(isinstance(e, str) for e in errors):
        return tuple(errors)
    return ()


def _detail(errors: tuple[str, ...]) -> str:
    text = "; ".join(errors)
    if not text:
        return ""
    return ": " + (text if len(text) <= _MAX_DETAIL else text[:_MAX_DETAIL] + "...")


def _transport(exc: Exception, operation: str, url: str) -> CryptoError:
    # ConnectTimeout is both a Timeout and a ConnectionError; report it as a timeout.
    if isinstance(exc, requests.Timeout):
        return VaultUnavailable(f"Vault at {url} did not answer {operation} in time")
    if isinstance(exc, requests.ConnectionError):
        return VaultUnavailable(
            f"Vault at {url} is unreachable during {operation} (connection refused or reset)"
        )
    return VaultUnavailable(
        f"Vault at {url} could not be reached during {operation} ({type(exc).__name__})"
    )


def translate(exc: Exception, operation: str, url: str) -> CryptoError:
    """The typed error for a failed hvac call; `operation` names what was attempted."""
    if not isinstance(exc, hvac.exceptions.VaultError):
        return _transport(exc, operation, url)
    errors = vault_errors(exc)
    if isinstance(exc, hvac.exceptions.Forbidden | hvac.exceptions.Unauthorized):
        return VaultPermissionDenied(
            f"Vault denied {operation}: the policy does not allow it or the token expired"
        )
    if isinstance(exc, hvac.exceptions.VaultDown | hvac.exceptions.VaultNotInitialized):
        return VaultSealed(f"Vault at {url} is sealed or not ready and refused {operation}")
    if isinstance(exc, hvac.exceptions.RateLimitExceeded):
        return VaultUnavailable(f"Vault at {url} rate-limited {operation}")
    status = _STATUS.get(type(exc))
    return VaultRequestFailed(
        f"Vault rejected {operation} (HTTP {status or 'error'}){_detail(errors)}",
        status=status,
        vault_errors=errors,
    )


_STATUS: dict[type[Exception], int] = {
    hvac.exceptions.InvalidRequest: 400,
    hvac.exceptions.InvalidPath: 404,
    hvac.exceptions.UnsupportedOperation: 405,
    hvac.exceptions.PreconditionFailed: 412,
    hvac.exceptions.InternalServerError: 500,
    hvac.exceptions.BadGateway: 502,
}
