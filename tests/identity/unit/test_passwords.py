"""The NIST SP 800-63B password policy: length, common values, identity, repetition. Codes only."""

# The point of these tests is text that looks alike but differs (Arabic, full-width forms).
# ruff: noqa: RUF001

from __future__ import annotations

import random
import string

import pytest

from moment_identity.domain.passwords import (
    COMMON,
    CONTAINS_IDENTITY,
    DEFAULT_POLICY,
    PROBLEM_CODES,
    REPETITIVE,
    TOO_LONG,
    TOO_SHORT,
    PasswordPolicy,
    PasswordPolicyError,
    check_password,
    normalise_password,
    password_length,
)

USERNAME = "Ahmed.Ali"
EMAIL = "ahmed.ali+shop@example.com"
STRONG = "violet tram sings under 7 bridges"


def check(password: str, policy: PasswordPolicy = DEFAULT_POLICY) -> list[str]:
    return check_password(password, username=USERNAME, email=EMAIL, policy=policy)


@pytest.mark.parametrize(
    "password",
    [
        STRONG,
        "كلمة سر طويلة جدا",
        "🐱🐶🐭🐹🐰🦊🐻🐼",
        "correct horse battery staple",
        "Tr0ub4dor&3",
        "xk9#mQ2v",
        "الشمس تشرق من الشرق ٧ مرات",
        "   leading and trailing spaces   ",
    ],
)
def test_good_passwords_pass(password: str) -> None:
    assert check(password) == []


def test_default_policy_follows_nist_bounds() -> None:
    assert (DEFAULT_POLICY.min_length, DEFAULT_POLICY.max_length) == (8, 64)


@pytest.mark.parametrize(("min_length", "max_length"), [(7, 64), (8, 63), (80, 70)])
def test_policy_below_nist_is_refused(min_length: int, max_length: int) -> None:
    with pytest.raises(PasswordPolicyError):
        PasswordPolicy(min_length=min_length, max_length=max_length)


def test_too_short() -> None:
    assert check("Xq7!mZ2") == [TOO_SHORT]


def test_too_short_under_a_stricter_policy() -> None:
    policy = PasswordPolicy(min_length=15, max_length=128)
    assert check("xk9#mQ2v", policy) == [TOO_SHORT]
    assert check(STRONG, policy) == []


def test_64_characters_accepted_65_rejected() -> None:
    sixty_four = (STRONG + " and more words to fill the line up")[:64]
    assert len(sixty_four) == 64
    assert check(sixty_four) == []
    assert check(sixty_four + "x") == [TOO_LONG]


def test_a_longer_maximum_can_be_configured() -> None:
    long = STRONG * 3
    assert check(long) == [TOO_LONG]
    assert check(long, PasswordPolicy(max_length=128)) == []


def test_length_is_counted_in_code_points_after_nfkc() -> None:
    assert password_length("e\u0301") == 1  # e + combining acute composes to é
    assert password_length("ＡＢ") == 2
    assert password_length("🙂") == 1
    assert normalise_password("ﬁ x") == "fi x"


@pytest.mark.parametrize(
    "password",
    [
        "password1",
        "Password",
        "PASSWORD",
        "iloveyou",
        "i love you",
        "dragon2024!",
        "Moment2024!",
        "مومنت٢٠٢٤",
    ],
)
def test_common_and_context_words_are_rejected(password: str) -> None:
    assert COMMON in check(password)


def test_context_words_are_configurable() -> None:
    policy = PasswordPolicy(context_words=frozenset({"سوق", "bazaar"}))
    assert COMMON in check("Bazaar2024", policy)
    assert check("Moment2024!", policy) == []


@pytest.mark.parametrize(
    ("password", "username", "email"),
    [
        ("ahmedali", "AhmedAli", "someone@example.com"),
        ("ahmed.ali1990", USERNAME, EMAIL),
        ("my name is Ahmed Ali", USERNAME, EMAIL),
        ("shopper-9981", "x", "Shopper-9981@example.com"),
        ("zainab2024!", "x", "zainab+store@example.com"),
        ("احمدالعلي٢٠٢٤", "أحمد_العلي", "someone@example.com"),
        ("noor.home", "noor.home.store", "someone@example.com"),
    ],
)
def test_identity_in_password_is_rejected(password: str, username: str, email: str) -> None:
    assert CONTAINS_IDENTITY in check_password(
        password, username=username, email=email, policy=DEFAULT_POLICY
    )


def test_short_identity_values_are_not_searched_for() -> None:
    problems = check_password(
        "malibu beach house", username="ali", email="li@example.com", policy=DEFAULT_POLICY
    )
    assert problems == []


@pytest.mark.parametrize(
    "password",
    [
        "aaaaaaaa",
        "12345678",
        "abcdefgh",
        "87654321",
        "1234abcd",
        "aaaa1111",
        "abcabcabc",
        "p@ssp@ss",
        "١٢٣٤٥٦٧٨",
        "ضصثقفغعه",  # along a row of the Arabic keyboard
        "zxcvbnm,./",
        "😀😀😀😀😀😀😀😀",
        "        ",
        "ــــــــ",  # tatweel only
    ],
)
def test_repetitive_and_sequential_passwords_are_rejected(password: str) -> None:
    assert REPETITIVE in check(password)


def test_every_problem_is_reported_together() -> None:
    assert check_password("ahmed", username="ahmed", email="", policy=DEFAULT_POLICY) == [
        TOO_SHORT,
        CONTAINS_IDENTITY,
    ]


def test_policy_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        check_password(STRONG, USERNAME, EMAIL)  # type: ignore[call-arg]


def test_results_are_codes_and_never_echo_the_password() -> None:
    for password in ["password1", "secret-ahmed.ali", "aaaa", STRONG * 3]:
        problems = check(password)
        assert set(problems) <= set(PROBLEM_CODES)
        assert all(password not in problem for problem in problems)


def test_checking_a_thousand_passwords_completes() -> None:
    rng = random.Random(63)
    alphabet = string.ascii_letters + string.digits + " " + "ابتثجحخدذرزسشصضطظعغفقكلمنهوي"
    passwords = ["".join(rng.choices(alphabet, k=rng.randint(1, 70))) for _ in range(1000)]
    results = [check(password) for password in passwords]
    assert len(results) == 1000
    assert any(result == [] for result in results)
