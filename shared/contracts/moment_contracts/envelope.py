"""CloudEvents 1.0 in Kafka binary mode: attributes in `ce_*` headers, the JSON body as the value.

The `cloudevents` SDK does the attribute-to-header mapping and validates required attributes; this
module adds what the SDK leaves to us: typed bodies, the subject as partition key, and the W3C trace
headers and request/reply headers that travel beside the CloudEvents attributes.

Every record a service sends or consumes goes through here, and the SDK's generic mapping and
validation cost tens of microseconds a record. So the plain shapes our own producers write (known
attributes only, a UTC `time` in "Z" form) are mapped here directly, to the same headers and the
same attributes; anything else still goes through the SDK, which accepts or refuses it as before.
tests/contract/test_envelope_plain.py compares both ways byte for byte.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from moment_contracts.base import Contract

CONTENT_TYPE = "application/json"
CORRELATION_ID = "correlation_id"
REPLY_TO = "reply_to"
TRACE_HEADERS = ("traceparent", "tracestate")
_FORMAT = JSONFormat()
SPECVERSION = "1.0"
# The attributes the SDK maps without checks of its own beyond "present, a non-empty string"
# (and specversion 1.0): a record with any other ce_ header is left to the SDK.
_KNOWN_HEADERS = frozenset(
    {"ce_id", "ce_source", "ce_type", "ce_specversion", "ce_time", "ce_subject", "ce_dataschema"}
)
_REQUIRED_HEADERS = ("ce_id", "ce_source", "ce_type")
_OPTIONAL_HEADERS = ("ce_subject", "ce_dataschema", "content-type")
# What `time.isoformat()` writes for a UTC instant, with the SDK's "Z": parsed the same by
# datetime.fromisoformat and by the SDK's (dateutil's) ISO 8601 parser.
# ASCII digits only: the SDK's parser refuses others.
_UTC_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{6})?Z")


# --- Envelope limits -----------------------------------------------------------------------------
# Every consumed record's headers are held to these in `from_kafka`, before anything else reads
# them: no attribute of unbounded length or odd format can reach a handler, an inbox key or a log.
# The record's total size is checked before this, against KafkaConfig.max_message_bytes.
class EnvelopeLimits:
    MAX_HEADERS = 32
    MAX_HEADER_NAME_BYTES = 64
    # Any header without a rule of its own below (an extension, a foreign tracing header).
    MAX_HEADER_VALUE_BYTES = 1024
    ID_CHARS = 128  # ce_id, ce_subject, correlation_id: visible ASCII (0x21-0x7E)
    SOURCE_CHARS = 256  # no whitespace, no control characters
    TYPE_CHARS = 128  # [a-z0-9][a-z0-9.-]*
    DATASCHEMA_CHARS = 512
    TIME_CHARS = 64  # and then a valid RFC 3339 time (the plain parse or the SDK's)
    TOPIC_CHARS = 249  # reply_to: a valid Kafka topic name
    TRACEPARENT_CHARS = 256  # a malformed one within the bound is ignored, as W3C says
    TRACESTATE_CHARS = 512
    CONTENT_TYPE_CHARS = 128


_L = EnvelopeLimits
_VISIBLE = "\\x21-\\x7e"
# Header name -> the whole value must match. Names not listed are bounded by MAX_HEADER_VALUE_BYTES.
_RULES: dict[str, re.Pattern[str]] = {
    "ce_id": re.compile(f"[{_VISIBLE}]{{1,{_L.ID_CHARS}}}"),
    "ce_source": re.compile(f"[^\\s\\x00-\\x1f\\x7f-\\x9f]{{1,{_L.SOURCE_CHARS}}}"),
    "ce_type": re.compile(f"[a-z0-9][a-z0-9.-]{{0,{_L.TYPE_CHARS - 1}}}"),
    "ce_specversion": re.compile(re.escape(SPECVERSION)),
    "ce_subject": re.compile(f"[{_VISIBLE}]{{1,{_L.ID_CHARS}}}"),
    "ce_dataschema": re.compile(f"[{_VISIBLE}]{{1,{_L.DATASCHEMA_CHARS}}}"),
    "ce_time": re.compile(f"[{_VISIBLE}]{{1,{_L.TIME_CHARS}}}"),
    "content-type": re.compile(f"[\\x20-\\x7e]{{1,{_L.CONTENT_TYPE_CHARS}}}"),
    CORRELATION_ID: re.compile(f"[{_VISIBLE}]{{1,{_L.ID_CHARS}}}"),
    REPLY_TO: re.compile(f"(?!\\.{{1,2}}$)[A-Za-z0-9._-]{{1,{_L.TOPIC_CHARS}}}"),
    "traceparent": re.compile(f"[\\x20-\\x7e]{{0,{_L.TRACEPARENT_CHARS}}}"),
    "tracestate": re.compile(f"[\\x20-\\x7e]{{0,{_L.TRACESTATE_CHARS}}}"),
}
# CloudEvents requires specversion; we speak 1.0 only.
_REQUIRED = ("ce_id", "ce_source", "ce_type", "ce_specversion")
_PRINTABLE_NAME = re.compile(f"[{_VISIBLE}]{{1,{_L.MAX_HEADER_NAME_BYTES}}}")

KafkaHeaders = list[tuple[str, bytes]]


class EnvelopeError(ValueError):
    """The Kafka record is not a valid binary-mode CloudEvent."""


@dataclass(frozen=True)
class Envelope:
    """One event or command on the wire. `subject` is a pseudonymous id, never personal data."""

    type: str
    source: str
    data: bytes
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    subject: str | None = None
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    dataschema: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, body: Contract, *, source: str, subject: str | None = None, **kw: Any) -> Envelope:
        return cls(
            type=body.ce_type,
            source=source,
            data=body.model_dump_json().encode(),
            subject=subject,
            dataschema=body.dataschema(),
            **kw,
        )

    @property
    def key(self) -> bytes | None:
        """Partition by subject, so every event about one person stays in order."""
        return self.subject.encode() if self.subject else None

    def headers(self) -> KafkaHeaders:
        headers = self._plain_headers()
        if headers is None:
            headers = self._sdk_headers()
        headers.extend((name, value.encode()) for name, value in self.extra.items())
        return headers

    def _plain_headers(self) -> KafkaHeaders | None:
        """The SDK's headers for the plain case, in its order; None when the SDK must judge."""
        moment = self.time
        if not (
            type(self.id) is str
            and type(self.source) is str
            and type(self.type) is str
            and self.id
            and self.source
            and self.type
            and isinstance(moment, datetime)
            and moment.tzinfo
            and (not self.subject or type(self.subject) is str)
            and (not self.dataschema or type(self.dataschema) is str)
        ):
            return None
        time = moment.isoformat()
        if time.endswith("+00:00"):
            time = time[:-6] + "Z"
        headers = [
            ("ce_id", self.id.encode()),
            ("ce_source", self.source.encode()),
            ("ce_type", self.type.encode()),
            ("ce_time", time.encode()),
            ("content-type", _CONTENT_TYPE_BYTES),
        ]
        if self.subject:
            headers.append(("ce_subject", self.subject.encode()))
        if self.dataschema:
            headers.append(("ce_dataschema", self.dataschema.encode()))
        headers.append(("ce_specversion", _SPECVERSION_BYTES))
        return headers

    def _sdk_headers(self) -> KafkaHeaders:
        attributes: dict[str, Any] = {
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": self.time,
            "datacontenttype": CONTENT_TYPE,
        }
        if self.subject:
            attributes["subject"] = self.subject
        if self.dataschema:
            attributes["dataschema"] = self.dataschema
        message = ce_kafka.to_binary(CloudEvent(attributes=attributes, data=None), _FORMAT)
        return list(message.headers.items())

    def header(self, name: str) -> str | None:
        return self.extra.get(name)


def _name_of(name: object) -> str:
    """A header's name fit for an error detail: ours are short visible ASCII; others unnamed."""
    if isinstance(name, str) and _PRINTABLE_NAME.fullmatch(name):
        return repr(name)
    return "with an unprintable or over-long name"


def headers_to_dict(headers: Iterable[tuple[str, bytes | None]]) -> dict[str, str]:
    """The headers as text, each held to EnvelopeLimits; raises EnvelopeError naming the header
    (never its value) when one is missing a value, repeated, not UTF-8 or out of bounds.

    Every consumed record comes through here, so the common case is one dict comprehension and
    one pass of checks; anything wrong is explained by `_refusal`, which walks the headers again.
    """
    listed = headers if isinstance(headers, list | tuple) else list(headers)
    if len(listed) > _L.MAX_HEADERS:
        raise EnvelopeError(f"more than {_L.MAX_HEADERS} headers")
    try:
        raw = {name: value.decode() for name, value in listed}  # type: ignore[union-attr]
    except (AttributeError, UnicodeDecodeError):
        raise _refusal(listed) from None
    if len(raw) != len(listed):
        raise _refusal(listed)
    for name, text in raw.items():
        check = _CHECKS.get(name)
        if not (check(text) if check is not None else _extension_ok(name, text)):
            raise _refusal(listed)
    if not raw.keys() >= _REQUIRED_SET:
        missing = next(name for name in _REQUIRED if name not in raw)
        raise EnvelopeError(f"required header {missing!r} is missing")
    return raw


_REQUIRED_SET = frozenset(_REQUIRED)


def _visible(limit: int) -> Callable[[str], bool]:
    """_RULES' `[\\x21-\\x7e]{1,limit}` with str methods: a fraction of a regex's cost."""

    def check(text: str) -> bool:
        return 0 < len(text) <= limit and text.isascii() and text.isprintable() and " " not in text

    return check


def _printable(limit: int) -> Callable[[str], bool]:
    """_RULES' `[\\x20-\\x7e]{0,limit}` with str methods."""

    def check(text: str) -> bool:
        return len(text) <= limit and text.isascii() and text.isprintable()

    return check


def _memoised(rule: re.Pattern[str]) -> Callable[[str], bool]:
    """A rule for a header whose values repeat (a source, a type, a reply topic): each value is
    matched once, and the memo is bounded so that varied values only cost the match."""
    known: set[str] = set()

    def check(text: str) -> bool:
        if text in known:
            return True
        if rule.fullmatch(text) is None:
            return False
        if len(known) >= _MEMO_SIZE:
            known.clear()
        known.add(text)
        return True

    return check


_MEMO_SIZE = 1024
# The per-record checks: the same rules as _RULES (tests/contract/test_envelope_limits.py holds
# both to each limit), written for speed; every consumed record runs these.
_CHECKS: dict[str, Callable[[str], bool]] = {
    name: _memoised(rule) for name, rule in _RULES.items()
} | {
    "ce_id": _visible(_L.ID_CHARS),
    "ce_subject": _visible(_L.ID_CHARS),
    CORRELATION_ID: _visible(_L.ID_CHARS),
    "ce_time": _visible(_L.TIME_CHARS),
    "traceparent": _printable(_L.TRACEPARENT_CHARS),
    "tracestate": _printable(_L.TRACESTATE_CHARS),
}


def _extension_ok(name: str, text: str) -> bool:
    """A header without a rule of its own: its name and value within their bounds in bytes (the
    bytes counted only when the characters leave any doubt)."""
    return (
        0 < len(name) <= _L.MAX_HEADER_NAME_BYTES
        and (name.isascii() or len(name.encode()) <= _L.MAX_HEADER_NAME_BYTES)
        and (
            len(text) <= _L.MAX_HEADER_VALUE_BYTES // 4
            or len(text.encode()) <= _L.MAX_HEADER_VALUE_BYTES
        )
    )


def _refusal(headers: Sequence[tuple[str, bytes | None]]) -> EnvelopeError:
    """Why headers_to_dict refuses these headers: the first header that breaks a rule."""
    seen: set[str] = set()
    for name, value in headers:
        problem = _header_problem(name, value, seen)
        if problem is not None:
            return EnvelopeError(problem)
        seen.add(name)
    return EnvelopeError("the headers are out of bounds")  # not reached: the caller found one


def _header_problem(name: str, value: bytes | None, seen: set[str]) -> str | None:
    problem: str | None = None
    text = value.decode("utf-8", "replace") if type(value) is bytes else None
    rule = _RULES.get(name)
    if text is None:
        problem = "has no value"
    elif not name or len(name.encode("utf-8", "replace")) > _L.MAX_HEADER_NAME_BYTES:
        return f"a header name is empty or over {_L.MAX_HEADER_NAME_BYTES} bytes"
    elif name in seen:
        problem = "appears more than once"
    elif rule is None and len(value or b"") > _L.MAX_HEADER_VALUE_BYTES:
        problem = f"is over {_L.MAX_HEADER_VALUE_BYTES} bytes"
    elif "\ufffd" in text and text.encode() != value:
        problem = "is not valid UTF-8"
    elif rule is not None and rule.fullmatch(text) is None:
        problem = "is out of bounds or badly formed"
    return None if problem is None else f"header {_name_of(name)} {problem}"


def header_ok(name: str, text: str) -> bool:
    """Whether one header, taken alone, keeps its rule (used to answer a refused request)."""
    rule = _RULES.get(name)
    return (
        rule.fullmatch(text) is not None
        if rule is not None
        else len(text) <= _L.MAX_HEADER_VALUE_BYTES
    )


def from_kafka(headers: Iterable[tuple[str, bytes | None]], value: bytes) -> Envelope:
    """Parse a consumed record: headers held to EnvelopeLimits first, then mapped as the SDK maps
    them. Raises EnvelopeError for any header out of bounds or a record that is no CloudEvent."""
    return map_attributes(headers_to_dict(headers), value)


def map_attributes(raw: dict[str, str], value: bytes) -> Envelope:
    """Checked headers to an Envelope: the plain mapping when it applies, else the SDK's."""
    plain = _plain_envelope(raw, value)
    return plain if plain is not None else _sdk_envelope(raw, value)


def _sdk_envelope(raw: dict[str, str], value: bytes) -> Envelope:
    ce_headers = {
        k: v.encode() for k, v in raw.items() if k.startswith("ce_") or k == "content-type"
    }
    try:
        event = ce_kafka.from_binary(
            ce_kafka.KafkaMessage(headers=ce_headers, key=None, value=b""), _FORMAT
        )
    except Exception as exc:  # the SDK raises several unrelated types for bad attributes
        raise EnvelopeError(f"not a CloudEvent in binary mode: {type(exc).__name__}") from exc
    attributes = event.get_attributes()
    extra = {k: v for k, v in raw.items() if not k.startswith("ce_") and k != "content-type"}
    return Envelope(
        type=str(attributes["type"]),
        source=str(attributes["source"]),
        id=str(attributes["id"]),
        subject=attributes.get("subject"),
        time=attributes.get("time") or datetime.now(UTC),
        dataschema=attributes.get("dataschema"),
        data=value,
        extra=extra,
    )


def _sdk_utc() -> tzinfo | None:
    """The tzinfo the SDK gives a "Z" time, so a plain parse yields the very same datetime."""
    message = ce_kafka.KafkaMessage(
        headers={
            "ce_id": b"-",
            "ce_source": b"-",
            "ce_type": b"-",
            "ce_time": b"2000-01-01T00:00:00Z",
        },
        key=None,
        value=b"",
    )
    time: datetime = ce_kafka.from_binary(message, _FORMAT).get_attributes()["time"]
    return time.tzinfo


_CONTENT_TYPE_BYTES = CONTENT_TYPE.encode()
_SPECVERSION_BYTES = SPECVERSION.encode()
_SDK_UTC = _sdk_utc()


def _plain_time(raw: Mapping[str, str]) -> datetime | None:
    """`ce_time` as the SDK parses it, or None when absent, or not in the plain "Z" form."""
    text = raw.get("ce_time")
    if text is None or _UTC_TIME.fullmatch(text) is None:
        return None
    try:
        return datetime.fromisoformat(text[:-1]).replace(tzinfo=_SDK_UTC)
    except ValueError:  # a month 13, a leap second...: the SDK says what is wrong
        return None


def _plain_envelope(raw: dict[str, str], value: bytes) -> Envelope | None:
    """The envelope the SDK would give for a plain record; None when the SDK must judge it."""
    extra: dict[str, str] = {}
    for name, text in raw.items():
        if name.startswith("ce_"):
            if name not in _KNOWN_HEADERS:
                return None
        elif name != "content-type":
            extra[name] = text
    if raw.get("ce_specversion", SPECVERSION) != SPECVERSION:
        return None
    if not all(raw.get(name) for name in _REQUIRED_HEADERS):
        return None
    if any(name in raw and not raw[name] for name in _OPTIONAL_HEADERS):
        return None
    time = _plain_time(raw)
    if time is None and "ce_time" in raw:
        return None
    return Envelope(
        type=raw["ce_type"],
        source=raw["ce_source"],
        id=raw["ce_id"],
        subject=raw.get("ce_subject"),
        time=time or datetime.now(UTC),
        dataschema=raw.get("ce_dataschema"),
        data=value,
        extra=extra,
    )
