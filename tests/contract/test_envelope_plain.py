"""The envelope's own mapping of plain records agrees with the CloudEvents SDK's, byte for byte."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from cloudevents.core.exceptions import CloudEventValidationError

from moment_contracts import envelope as env
from moment_contracts.envelope import Envelope, EnvelopeError

MOMENTS = (
    datetime(2026, 11, 26, 10, 0, tzinfo=UTC),
    datetime(2026, 11, 26, 10, 0, 1, 123456, tzinfo=UTC),
    datetime(2026, 11, 26, 10, 0, 1, 5, tzinfo=timezone(timedelta(hours=2))),
    datetime(2026, 11, 26, 10, 0, 1, 5, tzinfo=timezone(timedelta(0))),
)
SHAPES: tuple[dict[str, Any], ...] = (
    {},
    {"subject": "s-1"},
    {"subject": "", "dataschema": ""},
    {"subject": "sujet-é", "dataschema": "urn:x", "extra": {"traceparent": "00-ab", "r": "é"}},
)


@pytest.mark.parametrize("moment", MOMENTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_plain_headers_are_the_sdk_headers(moment: datetime, shape: dict[str, Any]) -> None:
    event = Envelope(type="t.v1", source="/moment/x", data=b"{}", time=moment, **shape)
    assert event._plain_headers() == event._sdk_headers()


@pytest.mark.parametrize(
    "odd",
    [
        {"id": ""},
        {"source": ""},
        {"time": datetime(2026, 11, 26, 10, 0)},  # noqa: DTZ001 - naive on purpose
    ],
)
def test_what_the_sdk_refuses_to_send_is_still_refused(odd: dict[str, Any]) -> None:
    event = Envelope(**{"type": "t.v1", "source": "/moment/x", "data": b"{}", **odd})
    assert event._plain_headers() is None
    with pytest.raises(CloudEventValidationError):
        event.headers()


def _raw(**changes: str | None) -> dict[str, str]:
    raw = {
        "ce_id": "id-1",
        "ce_source": "/moment/x",
        "ce_type": "t.v1",
        "ce_time": "2026-11-26T10:00:01.123456Z",
        "content-type": "application/json",
        "ce_subject": "s-1",
        "ce_dataschema": "urn:x",
        "ce_specversion": "1.0",
        "traceparent": "00-ab",
    }
    raw.update({k: v for k, v in changes.items() if v is not None})
    return {k: v for k, v in raw.items() if changes.get(k, "keep") is not None}


RECORDS = (
    _raw(),
    _raw(ce_time="2026-11-26T10:00:01Z"),
    _raw(ce_time=None, ce_subject=None, ce_dataschema=None, **{"content-type": None}),
    _raw(ce_specversion=None),
    _raw(ce_time="2026-11-26T10:00:01+00:00"),
    _raw(ce_time="2026-11-26T10:00:01.12Z"),
    _raw(ce_time="2026-11-26T24:00:00Z"),
    _raw(ce_time="2026-13-26T10:00:00Z"),
    _raw(ce_time="nonsense"),
    _raw(ce_time="٢٠٢٦-11-26T10:00:01Z"),
    _raw(ce_time=""),
    _raw(ce_id=""),
    _raw(ce_id=None),
    _raw(ce_source=None),
    _raw(ce_type=""),
    _raw(ce_subject=""),
    _raw(ce_dataschema=""),
    _raw(ce_specversion="0.3"),
    _raw(ce_specversion="2.0"),
    _raw(**{"content-type": ""}),
    _raw(ce_partitionkey="k"),
    _raw(ce_bad_name="x"),
    _raw(ce_ID="upper"),
    _raw(ce_data="reserved"),
)


def _sdk(raw: dict[str, str]) -> Envelope | str:
    try:
        return env._sdk_envelope(raw, b"{}")
    except EnvelopeError as exc:
        return str(exc)


def _parsed(raw: dict[str, str]) -> Envelope | str:
    try:
        # The mapping alone: the envelope limits (test_envelope_limits.py) come before it.
        return env.map_attributes(raw, b"{}")
    except EnvelopeError as exc:
        return str(exc)


def _comparable(parsed: Envelope | str) -> Any:
    if isinstance(parsed, str):
        return parsed
    # Without ce_id, the SDK makes one up (a fresh uuid4): compared as present, not by value.
    fields = (parsed.type, parsed.source, bool(parsed.id), parsed.subject, parsed.dataschema)
    return (*fields, parsed.data, dict(parsed.extra), parsed.time.tzinfo.__class__)


@pytest.mark.parametrize("raw", RECORDS)
def test_a_consumed_record_parses_as_the_sdk_parses_it(raw: dict[str, str]) -> None:
    ours, sdk = _parsed(raw), _sdk(raw)
    assert _comparable(ours) == _comparable(sdk)
    if "ce_id" in raw and not isinstance(sdk, str):
        assert not isinstance(ours, str)
        assert ours.id == sdk.id
    if "ce_time" in raw and not isinstance(sdk, str):
        assert not isinstance(ours, str)
        assert ours.time == sdk.time
        assert ours.time.utcoffset() == sdk.time.utcoffset()
