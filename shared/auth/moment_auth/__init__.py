"""Short-lived tokens for customers, staff and service accounts: signed by Vault Transit in the
identity service, verified offline by every service."""

from moment_auth.claims import DEFAULT_AUDIENCE, ISSUER, TokenClaims
from moment_auth.errors import (
    AuthError,
    TokenAlgorithmRejected,
    TokenAudienceMismatch,
    TokenError,
    TokenExpired,
    TokenIssuerMismatch,
    TokenMalformed,
    TokenNotYetValid,
    TokenRevoked,
    TokenSignatureInvalid,
    TokenSigningFailed,
    TokenUnknownKey,
)
from moment_auth.principals import Principal, PrincipalKind, Role, ServiceAccount
from moment_auth.revocation import (
    RevocationList,
    RevocationRule,
    RevocationStore,
    check_revoked,
)
from moment_auth.tokens import (
    DEFAULT_TTL_S,
    SIGNING_KEY_NAME,
    IssuedToken,
    TokenSigner,
    TokenVerifier,
    VerifiedToken,
    public_keys_by_kid,
)

__all__ = [
    "DEFAULT_AUDIENCE",
    "DEFAULT_TTL_S",
    "ISSUER",
    "SIGNING_KEY_NAME",
    "AuthError",
    "IssuedToken",
    "Principal",
    "PrincipalKind",
    "RevocationList",
    "RevocationRule",
    "RevocationStore",
    "Role",
    "ServiceAccount",
    "TokenAlgorithmRejected",
    "TokenAudienceMismatch",
    "TokenClaims",
    "TokenError",
    "TokenExpired",
    "TokenIssuerMismatch",
    "TokenMalformed",
    "TokenNotYetValid",
    "TokenRevoked",
    "TokenSignatureInvalid",
    "TokenSigner",
    "TokenSigningFailed",
    "TokenUnknownKey",
    "TokenVerifier",
    "VerifiedToken",
    "check_revoked",
    "public_keys_by_kid",
]
