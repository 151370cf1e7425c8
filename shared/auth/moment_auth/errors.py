"""Typed errors for issuing and verifying tokens.

Messages are fixed English sentences: they never carry the token, a claim value or anything else
taken from the presented token, so callers may log them and return them in problem responses.
"""

from __future__ import annotations


class AuthError(Exception):
    """Base class of every error raised by moment_auth."""


class TokenSigningFailed(AuthError):
    """Vault signed, but not in a form that yields a verifiable token."""


class TokenError(AuthError):
    """A presented token was rejected; the subclass says why."""


class TokenMalformed(TokenError):
    """The token is not a well-formed compact JWS with the expected header and claims."""


class TokenAlgorithmRejected(TokenMalformed):
    """The header names another algorithm than EdDSA (for instance "none" or "HS256")."""


class TokenSignatureInvalid(TokenError):
    """The signature does not verify with the key the header names."""


class TokenUnknownKey(TokenSignatureInvalid):
    """The header names a signing key version this verifier does not know (or no longer trusts)."""


class TokenExpired(TokenError):
    """The token's exp has passed, leeway included."""


class TokenNotYetValid(TokenError):
    """The token's nbf or iat lies in the future, leeway included."""


class TokenIssuerMismatch(TokenError):
    """The token was not issued by the expected issuer."""


class TokenAudienceMismatch(TokenError):
    """The token is not meant for this service."""


class TokenRevoked(TokenError):
    """The principal's tokens up to this one were revoked (logout everywhere, role change...)."""
