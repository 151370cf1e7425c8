"""The JWT claims set of a Moment token, and its canonical JSON form.

Numeric dates are whole seconds since the epoch (RFC 7519). `aud` is a single string when the
token has one audience and a list otherwise; both forms are read back as a tuple.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from moment_auth.errors import TokenMalformed
from moment_auth.principals import Principal, PrincipalId, PrincipalKind, Role

ISSUER = "moment-identity"
DEFAULT_AUDIENCE = "moment"

Audience = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9.-]{0,63}$")]
_JTI_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, ASCII only: the same claims always give the same bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def audiences(audience: str | Sequence[str]) -> tuple[str, ...]:
    """One audience or several, as a tuple without duplicates (order kept)."""
    if isinstance(audience, str):
        return (audience,)
    return tuple(dict.fromkeys(audience))


class TokenClaims(BaseModel):
    """The claims a token carries; validated on the way in, so a verified token is well-typed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    iss: StrictStr
    sub: PrincipalId
    kind: PrincipalKind
    roles: tuple[Role, ...]
    sv: StrictInt = Field(ge=0)
    iat: StrictInt = Field(ge=0)
    nbf: StrictInt = Field(ge=0)
    exp: StrictInt = Field(ge=0)
    jti: Annotated[str, StringConstraints(pattern=_JTI_PATTERN)]
    aud: tuple[Audience, ...] = Field(min_length=1)

    @field_validator("aud", mode="before")
    @classmethod
    def _single_audience(cls, value: object) -> object:
        return (value,) if isinstance(value, str) else value

    @field_serializer("aud")
    def _compact_audience(self, value: tuple[str, ...]) -> str | list[str]:
        return value[0] if len(value) == 1 else list(value)

    @model_validator(mode="after")
    def _lifetime_is_positive(self) -> Self:
        if self.exp <= self.iat or self.exp <= self.nbf:
            raise ValueError("exp must come after iat and nbf")
        return self

    @classmethod
    def for_principal(
        cls,
        principal: Principal,
        *,
        issued_at: int,
        ttl_s: int,
        audience: str | Sequence[str] = DEFAULT_AUDIENCE,
        issuer: str = ISSUER,
    ) -> Self:
        return cls(
            iss=issuer,
            sub=principal.id,
            kind=principal.kind,
            roles=principal.roles,
            sv=principal.session_version,
            iat=issued_at,
            nbf=issued_at,
            exp=issued_at + ttl_s,
            jti=str(uuid.uuid4()),
            aud=audiences(audience),
        )

    @classmethod
    def from_json_object(cls, data: dict[str, Any]) -> Self:
        """Claims from a decoded payload; any deviation is TokenMalformed, without details."""
        try:
            return cls.model_validate(data)
        except ValidationError:
            # Pydantic's message quotes the offending input; it must not reach logs or replies.
            raise TokenMalformed("the token claims are invalid") from None

    def to_json(self) -> bytes:
        return canonical_json(self.model_dump(mode="json"))

    def principal(self) -> Principal:
        try:
            return Principal(id=self.sub, kind=self.kind, roles=self.roles, session_version=self.sv)
        except ValidationError:
            raise TokenMalformed("the token claims do not describe a valid principal") from None
