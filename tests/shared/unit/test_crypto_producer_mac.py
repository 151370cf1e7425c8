"""The producer MAC, attacked: every covered attribute, the body, the key, the key id, replays and
header games are caught; a rotated-out key still verifies what it signed."""

from __future__ import annotations

import dataclasses
import os
import timeit
from datetime import UTC, datetime

import pytest

from moment_contracts.envelope import Envelope
from moment_crypto.keysets import VersionedKeys
from moment_crypto.producer_mac import (
    KID_HEADER,
    MAC_HEADER,
    ProducerNotAuthenticated,
    ProducerSigner,
    ProducerVerifier,
)

SOURCE = "/moment/identity"
OLD = VersionedKeys(current="v1", keys={"v1": os.urandom(32)})
KEYS = VersionedKeys(current="v2", keys={"v1": OLD.keys["v1"], "v2": os.urandom(32)})
VERIFIER = ProducerVerifier(
    known={SOURCE: "identity", "/test/": "tests"},
    keys={"identity": KEYS, "tests": VersionedKeys(current="v1", keys={"v1": os.urandom(32)})},
)

Record = tuple[list[tuple[str, bytes | None]], bytes]


def envelope(**changes: object) -> Envelope:
    base = Envelope(
        type="moment.audit.personal-data-accessed.v1",
        source=SOURCE,
        data=b'{"action":"read","producer_seq":7}',
        subject="subject-1",
        time=datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
        dataschema="https://schemas.moment.test/x.json",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def signed(env: Envelope, keys: VersionedKeys = KEYS) -> Record:
    headers = env.headers()
    extra = ProducerSigner(keys).headers_for(headers, env.data)
    return [*headers, *((k, v.encode()) for k, v in extra.items())], env.data


def code_of(record: Record) -> str:
    with pytest.raises(ProducerNotAuthenticated) as caught:
        VERIFIER.check(*record)
    return caught.value.code


def replace_header(record: Record, name: str, value: bytes | None) -> Record:
    headers, body = record
    return [(n, value if n == name else v) for n, v in headers], body


def test_a_signed_record_verifies_with_the_current_and_an_older_key() -> None:
    assert VERIFIER.check(*signed(envelope())) == "identity"
    assert VERIFIER.check(*signed(envelope(), OLD)) == "identity"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ce_id", b"another-id"),
        ("ce_source", b"/moment/identity/"),
        ("ce_type", b"moment.audit.personal-data-accessed.v2"),
        ("ce_subject", b"subject-2"),
        ("ce_time", b"2026-01-02T03:04:06.123456Z"),
        ("ce_dataschema", b"https://schemas.moment.test/y.json"),
        ("ce_specversion", b"0.3"),
        (KID_HEADER, b"v1"),
    ],
)
def test_changing_a_covered_header_after_signing_is_caught(name: str, value: bytes) -> None:
    assert code_of(replace_header(signed(envelope()), name, value)) in {
        "bad-mac",
        "unknown-producer",
    }


def test_a_changed_body_or_a_replay_under_another_id_is_caught() -> None:
    headers, body = signed(envelope())
    assert code_of((headers, body.replace(b"7", b"8"))) == "bad-mac"
    assert code_of((headers, body + b" ")) == "bad-mac"
    replayed = replace_header(signed(envelope()), "ce_id", b"fresh-id")
    assert code_of(replayed) == "bad-mac"


def test_dropping_or_adding_an_optional_attribute_is_caught() -> None:
    headers, body = signed(envelope())
    assert code_of(([h for h in headers if h[0] != "ce_subject"], body)) == "bad-mac"
    bare_headers, bare_body = signed(envelope(subject=None))
    added = [*bare_headers, ("ce_subject", b"")]
    assert code_of((added, bare_body)) == "bad-mac"


def test_a_wrong_key_an_unknown_key_id_or_no_mac_is_refused() -> None:
    wrong = VersionedKeys(current="v2", keys={"v2": os.urandom(32)})
    assert code_of(signed(envelope(), wrong)) == "bad-mac"
    assert code_of(replace_header(signed(envelope()), KID_HEADER, b"v9")) == "unknown-key"
    headers, body = signed(envelope())
    assert code_of(([h for h in headers if h[0] != MAC_HEADER], body)) == "missing-mac"
    assert code_of(replace_header((headers, body), MAC_HEADER, None)) == "missing-mac"
    assert code_of(replace_header((headers, body), MAC_HEADER, b"00" * 32)) == "bad-mac"


def test_unknown_sources_and_another_producers_key_are_refused() -> None:
    assert code_of(signed(envelope(source="/made/up"))) == "unknown-producer"
    # Identity's key does not vouch for the tests' namespace, nor the other way round.
    assert code_of(signed(envelope(source="/test/anything"))) == "unknown-key"
    assert code_of(signed(envelope(source="/test/anything"), OLD)) == "bad-mac"
    assert VERIFIER.producer_of("/test/a/b") == "tests"
    assert VERIFIER.producer_of("/test") is None
    assert VERIFIER.producer_of("/moment/identityx") is None


def test_a_second_copy_of_a_covered_header_is_refused() -> None:
    headers, body = signed(envelope())
    assert code_of(([*headers, ("ce_subject", b"subject-2")], body)) == "duplicate-header"
    assert code_of(([("ce_source", b"/made/up"), *headers], body)) == "duplicate-header"


def test_checking_costs_microseconds() -> None:
    record = signed(envelope(data=b"x" * 2000))
    seconds = min(timeit.repeat(lambda: VERIFIER.check(*record), number=200, repeat=3)) / 200
    assert seconds < 200e-6
