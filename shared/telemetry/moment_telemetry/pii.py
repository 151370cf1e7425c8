"""Dropping personal data from log records before they are formatted.

The filter removes values by *key name*: extra fields on the record, keys of dicts nested in
those extras, and keys of dicts (or pydantic models and dataclasses) passed as the message's
``%`` arguments. It cannot recognise personal data inside free text, so two rules keep logs
clean where it cannot see:

- Message templates and plain-string arguments must never carry personal values; log ids.
- Our exceptions never carry values in their messages, so ``exc_info`` tracebacks are safe to
  log. An exception from a library that embeds input (``ValueError(f"bad {email}")``) must be
  caught and re-raised as a typed error without the value before it reaches a logger.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

__all__ = ["PII_FIELDS", "PII_SUBSTRINGS", "PiiScrubbingFilter", "is_pii_key"]

PII_FIELDS: frozenset[str] = frozenset(
    {
        "name", "full_name", "first_name", "last_name", "age", "email", "username",
        "password", "recovery_question", "recovery_answer", "answer", "phone", "address",
        "plaintext", "token", "secret", "secret_id", "pepper",
    }
)  # fmt: skip
"""Keys that are dropped wherever they appear (compared case-insensitively)."""

PII_SUBSTRINGS: tuple[str, ...] = ("password", "secret")
"""Any key containing one of these is dropped too (``new_password``, ``client_secret``)."""

_MAX_DEPTH = 8
_TOO_DEEP = "[nested too deep]"
# The attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRS: frozenset[str] = frozenset(
    logging.LogRecord("", logging.INFO, "", 0, "", None, None).__dict__
) | {"message", "asctime"}
_UNFORMATTABLE = " [arguments withheld: they held personal data]"
_PLAIN_COLLECTIONS = (list, tuple, set, frozenset)


def _as_mapping(value: object) -> object:
    if isinstance(value, BaseModel):
        return value.model_dump()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return value._asdict()
    return value


def _normalise(key: str) -> str:
    return key.strip().lower().replace("-", "_")


def is_pii_key(key: object, extra_fields: Iterable[str] = ()) -> bool:
    """Whether a dict key or record attribute named ``key`` must not be logged."""
    if not isinstance(key, str):
        return False
    normal = _normalise(key)
    if normal in PII_FIELDS or normal in extra_fields:
        return True
    return any(part in normal for part in PII_SUBSTRINGS)


class PiiScrubbingFilter(logging.Filter):
    """Removes personal data from records; attach it to handlers so every record passes it.

    Records are never suppressed, only cleaned: a dropped key disappears entirely rather than
    being masked, so not even the length of a value leaks.
    """

    def __init__(self, extra_fields: Iterable[str] = ()) -> None:
        super().__init__()
        self._extra_fields = frozenset(_normalise(field) for field in extra_fields)

    def filter(self, record: logging.LogRecord) -> bool:
        for key in [key for key in record.__dict__ if key not in _STANDARD_ATTRS]:
            if self._is_pii(key):
                delattr(record, key)
            else:
                setattr(record, key, self.scrub(getattr(record, key)))
        if not isinstance(record.msg, str):
            record.msg = self.scrub(record.msg)
        if record.args:
            self._scrub_args(record)
        return True

    def scrub(self, value: Any, depth: int = 0) -> Any:
        """A copy of ``value`` with PII-named keys removed from every mapping inside it.

        Pydantic models, dataclasses and named tuples are turned into dicts first, since their
        field names are keys too. Other objects are returned unchanged.
        """
        if depth > _MAX_DEPTH:
            return _TOO_DEEP
        value = _as_mapping(value)
        if isinstance(value, Mapping):
            return {
                key: self.scrub(item, depth + 1)
                for key, item in value.items()
                if not self._is_pii(key)
            }
        if type(value) in _PLAIN_COLLECTIONS:
            return type(value)(self.scrub(item, depth + 1) for item in value)
        return value

    def _is_pii(self, key: object) -> bool:
        return is_pii_key(key, self._extra_fields)

    def _scrub_args(self, record: logging.LogRecord) -> None:
        record.args = self.scrub(record.args)
        # Logging keeps a lone mapping argument as the mapping itself, for "%(key)s" templates.
        if not isinstance(record.args, Mapping):
            return
        if not record.args:
            # An emptied mapping is falsy, and logging would then skip formatting altogether.
            record.args = (record.args,)
        try:
            record.getMessage()
        except (KeyError, TypeError, ValueError):
            # A template such as "%(email)s" names a key we removed. Formatting would fail in the
            # handler, whose error report prints the arguments, so fall back to the bare template.
            record.msg = f"{record.msg}{_UNFORMATTABLE}"
            record.args = None
