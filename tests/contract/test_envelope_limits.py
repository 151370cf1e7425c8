"""Every envelope attribute at its limit is accepted and one past it refused, before anything
else reads the record (EnvelopeLimits in moment_contracts.envelope). Refusals name the header,
never its value."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moment_contracts import envelope as env
from moment_contracts.envelope import (
    CORRELATION_ID,
    REPLY_TO,
    Envelope,
    EnvelopeError,
    EnvelopeLimits,
    from_kafka,
)

L = EnvelopeLimits
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
Headers = list[tuple[str, bytes | None]]


def _headers(**changes: str | bytes | None) -> Headers:
    envelope = Envelope(
        type="moment.test.ping.v1",
        source="/moment/test",
        data=b"{}",
        subject="s-1",
        dataschema="urn:moment:test",
        extra={CORRELATION_ID: "c-1", REPLY_TO: "replies.abc", "traceparent": TRACEPARENT},
    )
    headers: Headers = list(envelope.headers())
    names = [name for name, _ in headers]
    for asked, value in changes.items():
        name = asked.replace("__", "-")
        raw = value.encode() if isinstance(value, str) else value
        if name in names:
            headers[names.index(name)] = (name, raw)
        else:
            headers.append((name, raw))
    return headers


def _without(name: str) -> Headers:
    return [(n, v) for n, v in _headers() if n != name]


def _refused(headers: Headers, value: bytes | str | None = None) -> str:
    with pytest.raises(EnvelopeError) as caught:
        from_kafka(headers, b"{}")
    detail = str(caught.value)
    if value:
        text = value if isinstance(value, str) else value.decode("utf-8", "replace")
        assert text not in detail, "a refusal never quotes the value"
    return detail


# (header, the longest accepted value, the same one character longer)
AT_AND_PAST = [
    ("ce_id", "i" * L.ID_CHARS),
    ("ce_source", "/" + "s" * (L.SOURCE_CHARS - 1)),
    ("ce_type", "t" * L.TYPE_CHARS),
    ("ce_subject", "s" * L.ID_CHARS),
    ("ce_dataschema", "urn:" + "d" * (L.DATASCHEMA_CHARS - 4)),
    (CORRELATION_ID, "c" * L.ID_CHARS),
    (REPLY_TO, "replies." + "r" * (L.TOPIC_CHARS - 8)),
    ("traceparent", "0" * L.TRACEPARENT_CHARS),
    ("tracestate", "k=" + "v" * (L.TRACESTATE_CHARS - 2)),
    ("content-type", "application/json;" + "x" * (L.CONTENT_TYPE_CHARS - 17)),
    ("x-extension", "e" * L.MAX_HEADER_VALUE_BYTES),
]


@pytest.mark.parametrize(("name", "longest"), AT_AND_PAST)
def test_each_attribute_at_its_limit_is_accepted_and_one_past_refused(
    name: str, longest: str
) -> None:
    from_kafka(_headers(**{name.replace("-", "__"): longest}), b"{}")
    detail = _refused(_headers(**{name.replace("-", "__"): longest + "x"}), longest)
    assert repr(name) in detail


@pytest.mark.parametrize("name", ["ce_id", "ce_source", "ce_type", "ce_specversion"])
def test_required_attributes_must_be_present(name: str) -> None:
    assert _refused(_without(name)) == f"required header {name!r} is missing"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ce_specversion", "0.3"),
        ("ce_specversion", "1.0 "),
        ("ce_id", ""),
        ("ce_id", "has space"),
        ("ce_id", "ünicode"),
        ("ce_id", "tab\there"),
        ("ce_id", "del\x7f"),
        ("ce_source", ""),
        ("ce_source", "/with space"),
        ("ce_source", "/new\nline"),
        ("ce_source", "/c1\x85control"),
        ("ce_type", "Upper.case"),
        ("ce_type", ".leading-dot"),
        ("ce_type", "under_score"),
        ("ce_subject", ""),
        ("ce_subject", "ü"),
        ("ce_time", "nonsense"),
        ("ce_time", "2026-13-26T10:00:00Z"),
        ("ce_time", "2026-11-26T10:00:00Z" + "0" * L.TIME_CHARS),
        (CORRELATION_ID, ""),
        (CORRELATION_ID, "with space"),
        (REPLY_TO, "."),
        (REPLY_TO, ".."),
        (REPLY_TO, "replies/../audit.events"),
        (REPLY_TO, "replies.é"),
        ("traceparent", "tab\t"),
    ],
)
def test_badly_formed_attributes_are_refused(name: str, value: str) -> None:
    _refused(_headers(**{name: value}), value)


def test_a_well_bounded_but_malformed_traceparent_is_not_fatal() -> None:
    # W3C: a vendor that can't parse traceparent starts a new trace; it must not refuse the event.
    envelope = from_kafka(_headers(traceparent="garbage-not-a-trace", tracestate=",,=,"), b"{}")
    assert envelope.extra["traceparent"] == "garbage-not-a-trace"


def test_ce_time_at_its_limit_is_parsed() -> None:
    envelope = from_kafka(_headers(ce_time="2026-11-26T10:00:01.123456+00:00"), b"{}")
    assert envelope.time.year == 2026


def test_header_names_are_bounded_in_bytes_not_characters() -> None:
    from_kafka(_headers(**{"n" * L.MAX_HEADER_NAME_BYTES: "v"}), b"{}")
    from_kafka(_headers(**{"é" * (L.MAX_HEADER_NAME_BYTES // 2): "v"}), b"{}")
    _refused(_headers(**{"n" * (L.MAX_HEADER_NAME_BYTES + 1): "v"}))
    _refused(_headers(**{"é" * (L.MAX_HEADER_NAME_BYTES // 2) + "n": "v"}))


def test_header_count_is_bounded() -> None:
    headers = _headers()
    room = L.MAX_HEADERS - len(headers)
    full = headers + [(f"x-{i}", b"v") for i in range(room)]
    from_kafka(full, b"{}")
    assert _refused([*full, ("x-one-more", b"v")]) == f"more than {L.MAX_HEADERS} headers"


@pytest.mark.parametrize("name", ["ce_id", "ce_type", "reply_to", "x-other"])
def test_a_repeated_header_is_refused(name: str) -> None:
    headers = _headers(**{name.replace("-", "__"): "first"})
    detail = _refused([*headers, (name, b"second")], "second")
    assert detail == f"header {name!r} appears more than once"


@pytest.mark.parametrize("name", ["ce_id", "ce_subject", "traceparent", "x-other"])
def test_a_header_without_a_value_is_refused(name: str) -> None:
    headers = [*_without(name), (name, None)]
    assert _refused(headers) == f"header {name!r} has no value"


@pytest.mark.parametrize("name", ["ce_id", "ce_source", "x-other"])
def test_a_header_value_that_is_not_utf8_is_refused(name: str) -> None:
    headers = [*_without(name), (name, b"\xff\xfe-secret")]
    assert _refused(headers, "secret") == f"header {name!r} is not valid UTF-8"


def test_an_unprintable_header_name_is_not_echoed() -> None:
    detail = _refused([*_headers(), ("\x00secret\n", None)])
    assert "secret" not in detail


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(sorted(env._RULES)),
    st.text(alphabet=st.characters(max_codepoint=0x200), max_size=600)
    | st.text(alphabet="aZ0 .-_/:\t\x7f", max_size=600),
)
def test_the_fast_checks_are_the_documented_rules(name: str, text: str) -> None:
    documented = env._RULES[name].fullmatch(text) is not None
    assert env._CHECKS[name](text) is documented
    assert env.header_ok(name, text) is documented
