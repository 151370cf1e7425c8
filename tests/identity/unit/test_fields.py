"""The field rules registration and rectification share, attacked with generated input.

Every field of both plaintexts gets generated Unicode (controls, format characters, surrogates,
combining marks, every plane) and wrong JSON types. Each input is either accepted, and then its
stored and looked-up forms can be computed and its model round-trips, or refused with a typed
field error that names a known field and a worded code, never the value. Nothing else escapes.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moment_contracts.identity import RegistrationFields
from moment_contracts.profile import FieldChanges
from moment_identity.domain.access import READABLE_FIELDS
from moment_identity.domain.errors import RegistrationRejected
from moment_identity.domain.fields import (
    age_text_problem,
    answer_problem,
    email_problem,
    parse_plaintext,
    text_problem,
    username_problem,
)
from moment_identity.domain.model import check_changes, validate_registration
from moment_identity.domain.normalise import (
    display_text,
    email_key,
    recovery_answer_key,
    username_key,
)
from moment_identity.service.errors import FIELD_MESSAGES

VALID: dict[str, Any] = {
    "username": "layla_k",
    "email": "layla@example.test",
    "password": "a long enough passphrase",
    "name": "ليلى خالد",
    "age": 30,
    "recovery_question": "First school?",
    "recovery_answer": "Al Amal",
}
REGISTRATION_FIELDS = frozenset(RegistrationFields.model_fields)
ANY_CHARACTER = st.characters(codec=None, exclude_categories=())
NASTY = st.sampled_from(["\x00", "\u200b", "\u200d", "\ufeff", "\u202e", "\u3164", "²", "٣", " "])
TEXT = st.one_of(
    st.text(ANY_CHARACTER, max_size=80),
    st.lists(st.one_of(NASTY, st.text(ANY_CHARACTER, max_size=3)), max_size=20).map("".join),
    st.integers(0, 2_000).map(lambda n: "n" * n),
)
WRONG_TYPES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
VALUES = st.one_of(TEXT, WRONG_TYPES)


def refused_properly(rejected: RegistrationRejected, known: frozenset[str]) -> None:
    assert rejected.problems
    for problem in rejected.problems:
        assert problem.field in known | {"fields"}
        assert problem.code in FIELD_MESSAGES, problem.code


def registration(raw: str) -> None:
    try:
        fields = parse_plaintext(RegistrationFields, raw, REGISTRATION_FIELDS)
        status = validate_registration(fields)
    except RegistrationRejected as rejected:
        refused_properly(rejected, REGISTRATION_FIELDS)
        return
    assert type(fields.age) is int
    assert 1 <= fields.age <= 120
    assert status in {"active", "pending-guardian-consent"}
    assert RegistrationFields.model_validate_json(fields.model_dump_json()) == fields
    for value in (fields.name, fields.recovery_question, fields.username):
        assert display_text(value).strip()
    assert len(username_key(fields.username)) >= 3
    assert email_key(fields.email)
    assert recovery_answer_key(fields.recovery_answer)


def rectification(raw: str) -> None:
    try:
        changes = parse_plaintext(FieldChanges, raw, READABLE_FIELDS).values
        problems = check_changes({str(name): value for name, value in changes.items()})
    except RegistrationRejected as rejected:
        refused_properly(rejected, READABLE_FIELDS)
        return
    if problems:
        refused_properly(RegistrationRejected(problems), READABLE_FIELDS)
        return
    for name, value in changes.items():
        assert display_text(value)
        if name == "age":
            assert 1 <= int(value) <= 120


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(sorted(REGISTRATION_FIELDS)), value=VALUES)
def test_registration_takes_or_refuses_anything_in_any_field(field: str, value: Any) -> None:
    registration(json.dumps({**VALID, field: value}))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(sorted(READABLE_FIELDS)), value=VALUES)
def test_rectification_takes_or_refuses_anything_in_any_field(field: str, value: Any) -> None:
    rectification(json.dumps({"values": {field: value}}))


@settings(max_examples=100, deadline=None)
@given(
    body=st.dictionaries(
        st.one_of(st.sampled_from(sorted(REGISTRATION_FIELDS)), st.text(max_size=8)), VALUES
    )
)
def test_made_up_and_missing_fields_are_refused_by_name_only(body: dict[str, Any]) -> None:
    registration(json.dumps(body))
    rectification(json.dumps({"values": body}))


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("\u200b\u200c\u200d", "required"),
        ("\x00", "control"),
        ("Layla\x00", "control"),
        ("\u3164\u3164", "required"),
        ("n" * 513, "length"),
        ("ليلى", None),
        ("Zoë O'Neil", None),
    ],
)
def test_name_rules(value: str, code: str | None) -> None:
    assert text_problem(value, 512) == code


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("\u200b\u200b\u200b", "length"),
        ("a\u200bb", "length"),
        ("ab\x00c", "control"),
        ("\u0640\u0640\u0640", "length"),
    ],
)
def test_a_username_is_counted_as_it_is_seen(value: str, code: str) -> None:
    assert username_problem(value) == code


def test_an_answer_of_punctuation_alone_is_refused() -> None:
    assert answer_problem("؟!...") == "required"


@pytest.mark.parametrize(
    "value",
    [
        f"a@{'x' * 250}.com",
        f"a@{'x' * 64}.com",
        "a\x00b@example.com",
        "a@exa\x00mple.com",
        "a..b@example.com",
        f"{'a' * 65}@example.com",
        "no-at-sign",
    ],
)
def test_email_addresses_are_checked_properly(value: str) -> None:
    assert email_problem(value) is not None


@pytest.mark.parametrize("value", ["layla@example.test", "Layla@Example.COM", "ليلى@مثال.السعودية"])
def test_real_email_addresses_pass(value: str) -> None:
    assert email_problem(value) is None


@pytest.mark.parametrize("age", ['"30"', "30.0", "true", "null", '"²"', "[30]"])
def test_an_age_must_be_a_json_integer(age: str) -> None:
    raw = json.dumps(VALID).replace('"age": 30', f'"age": {age}')
    with pytest.raises(RegistrationRejected) as caught:
        parse_plaintext(RegistrationFields, raw, REGISTRATION_FIELDS)
    assert [(p.field, p.code) for p in caught.value.problems] == [("age", "type")]


@pytest.mark.parametrize("age", ["²", "٣٠", "+30", " 30", "30.0", "0", "121", ""])
def test_a_rectified_age_is_plain_digits_in_range(age: str) -> None:
    assert age_text_problem(age) is not None


def test_a_rectified_name_is_capped_like_at_registration() -> None:
    with pytest.raises(RegistrationRejected) as caught:
        parse_plaintext(
            FieldChanges, json.dumps({"values": {"name": "n" * 10_000}}), READABLE_FIELDS
        )
    assert [(p.field, p.code) for p in caught.value.problems] == [("name", "length")]
