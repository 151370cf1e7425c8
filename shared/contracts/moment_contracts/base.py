"""The base of every message model: strict, immutable, versioned through its CloudEvents type."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo


class NaiveTimestampError(ValueError):
    """A timestamp on the wire without its zone: RFC 3339 requires one."""


def _zoned(value: datetime, info: ValidationInfo) -> datetime:
    """Every timestamp on the wire is RFC 3339 with its zone. A naive value read off the wire is
    refused; a naive value built in Python is taken as UTC, as every store of ours writes UTC and
    SQLite hands it back without its zone (so it is written "…Z", never "2026-12-04 02:28:17")."""
    if value.utcoffset() is not None:
        return value
    if info.mode == "json":
        raise NaiveTimestampError("a timestamp must carry its zone (RFC 3339)")
    return value.replace(tzinfo=UTC)


# The type of every datetime field of every message (tests/contract/test_timestamps.py walks them).
Timestamp = Annotated[datetime, AfterValidator(_zoned)]


class Contract(BaseModel):
    """A message body. Subclasses set `ce_type`, which carries the schema version (…`.v1`).

    `extra="forbid"` makes an unknown field a schema violation rather than silently ignored data, so
    a producer that drifts from the contract lands on the dead-letter topic instead of being
    half-read.

    """

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)

    ce_type: ClassVar[str]

    @classmethod
    def schema_version(cls) -> int:
        return int(cls.ce_type.rsplit(".v", 1)[1])

    @classmethod
    def dataschema(cls) -> str:
        return f"urn:moment:schema:{cls.ce_type}"
