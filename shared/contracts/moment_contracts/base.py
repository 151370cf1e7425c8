"""The base of every message model: strict, immutable, versioned through its CloudEvents type."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict


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
