"""The password policy of NIST SP 800-63B (memorized secrets). Pure functions: no I/O.

What NIST asks for, and what this module does:
- length is the only strength rule: at least `min_length`, and at least 64 allowed. Length is
  counted in Unicode code points after NFKC, the normalisation NIST recommends before hashing;
  the hasher must therefore hash `normalise_password(password)`, not the raw input.
- no composition rules (no "one digit, one symbol"); any Unicode is allowed, spaces included,
  so Arabic passphrases and emoji are fine.
- reject values that are commonly used, expected or compromised: a bundled list of common
  passwords, context-specific words (the service's name, the user's username and e-mail), and
  repetitive or sequential characters.

The common-password list is zxcvbn's offline frequency list (30,000 entries, pinned with the
package). No online breach service (e.g. a k-anonymity range API) is ever called: the privacy
policy (P2.2) forbids passing users' data to others, and a password is the most sensitive of it.

Results are problem codes only; nothing returned, raised or logged here carries the password.
"""

from __future__ import annotations

import functools
import string
from dataclasses import dataclass

from moment_identity.domain.errors import IdentityError
from moment_identity.domain.normalise import arabic_fold, loose_key, nfkc

TOO_SHORT = "too-short"
TOO_LONG = "too-long"
COMMON = "common"
CONTAINS_IDENTITY = "contains-identity"
REPETITIVE = "repetitive"
PROBLEM_CODES = (TOO_SHORT, TOO_LONG, COMMON, CONTAINS_IDENTITY, REPETITIVE)

NIST_MIN_LENGTH = 8
NIST_MAX_LENGTH_FLOOR = 64

# Shorter identity values are not searched for inside a password: too many words contain them.
_IDENTITY_MIN_LENGTH = 4
# A common word with a short run of digits or punctuation around it ("dragon2024!") is exactly
# what cracking rule sets try first; a longer run is a secret of its own.
_WEAK_AFFIX_MAX = 5
_AFFIX_CHARS = string.digits + string.punctuation
# Units up to this length repeated ("abcabcabc", "p@ssp@ss") count as repetitive.
_REPEAT_UNIT_MAX = 4
# A password made of at most this many runs, each a repetition, a sequence or a keyboard row
# ("1234abcd", "aaaa1111", "qwerty123"), counts as repetitive.
_SIMPLE_RUNS_MAX = 2
_SIMPLE_RUNS_MIN_LENGTH = 6

# US QWERTY and the Arabic (101) layout, unshifted and shifted digit rows.
_KEYBOARD_ROWS_RAW = (
    "`1234567890-=",
    "~!@#$%^&*()_+",
    "qwertyuiop[]\\",
    "asdfghjkl;'",
    "zxcvbnm,./",
    "ذ1234567890-=",
    "ضصثقفغعهخحجد",
    "شسيبلاتنمكط",
    "ئءؤرلاىةوزظ",
)


class PasswordPolicyError(IdentityError, ValueError):
    """The policy itself is configured below what NIST SP 800-63B requires."""


@dataclass(frozen=True)
class PasswordPolicy:
    """Configurable bounds. NIST floors: `min_length` at least 8, `max_length` at least 64.

    `context_words` are service-specific words a password must not simply be (with digits or
    punctuation around it): NIST names the service's own name as an example.
    """

    min_length: int = NIST_MIN_LENGTH
    max_length: int = NIST_MAX_LENGTH_FLOOR
    context_words: frozenset[str] = frozenset({"moment", "مومنت"})

    def __post_init__(self) -> None:
        if self.min_length < NIST_MIN_LENGTH:
            raise PasswordPolicyError(f"min_length must be at least {NIST_MIN_LENGTH}")
        if self.max_length < max(NIST_MAX_LENGTH_FLOOR, self.min_length):
            raise PasswordPolicyError(
                f"max_length must be at least {NIST_MAX_LENGTH_FLOOR} and at least min_length"
            )


DEFAULT_POLICY = PasswordPolicy()


def normalise_password(password: str) -> str:
    """The form to hash and to measure: NFKC, nothing stripped (spaces are part of the secret)."""
    return nfkc(password)


def password_length(password: str) -> int:
    """Length as the policy counts it: code points after NFKC."""
    return len(normalise_password(password))


def check_password(
    password: str, *, username: str, email: str, policy: PasswordPolicy = DEFAULT_POLICY
) -> list[str]:
    """The problems with a proposed password, as codes from `PROBLEM_CODES`; empty if none.

    A too-long password is reported alone: the other checks are not run on oversized input.
    """
    normal = normalise_password(password)
    if len(normal) > policy.max_length:
        return [TOO_LONG]
    problems = []
    if len(normal) < policy.min_length:
        problems.append(TOO_SHORT)
    compact = "".join(arabic_fold(normal).split())
    if _is_common(normal, compact, policy.context_words):
        problems.append(COMMON)
    if _contains_identity(normal, username=username, email=email):
        problems.append(CONTAINS_IDENTITY)
    if _is_repetitive(compact):
        problems.append(REPETITIVE)
    return problems


@functools.cache
def _common_passwords() -> frozenset[str]:
    """Loaded on first use: the list is large and most processes never check a password."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS  # noqa: PLC0415 -- deferred on purpose

    return frozenset(nfkc(entry).casefold() for entry in FREQUENCY_LISTS["passwords"])


@functools.lru_cache(maxsize=8)
def _folded_words(words: frozenset[str]) -> frozenset[str]:
    return frozenset("".join(arabic_fold(word).split()) for word in words)


def _is_common(normal: str, compact: str, context_words: frozenset[str]) -> bool:
    """In the common list (case-insensitive, spaces ignored), or a listed or context word with a
    short affix of digits or punctuation."""
    common = _common_passwords()
    if normal.casefold() in common or compact in common:
        return True
    core = compact.strip(_AFFIX_CHARS)
    context = _folded_words(context_words)
    if compact in context or core in context:
        return True
    weak_affix = len(compact) - len(core) <= _WEAK_AFFIX_MAX
    return weak_affix and len(core) >= _IDENTITY_MIN_LENGTH and core in common


def _identity_keys(username: str, email: str) -> set[str]:
    local = email.rpartition("@")[0] if "@" in email else email
    # "ahmed+shop@example.com" is still ahmed: the sub-address tag is not part of the identity.
    values = {username, local, local.partition("+")[0]}
    return {key for key in map(loose_key, values) if key}


def _contains_identity(normal: str, *, username: str, email: str) -> bool:
    """Equal to the username or e-mail local part, or either contains the other, ignoring case,
    spacing, punctuation and Arabic spelling variants."""
    secret = loose_key(normal)
    for key in _identity_keys(username, email):
        if secret == key:
            return True
        if len(key) >= _IDENTITY_MIN_LENGTH and key in secret:
            return True
        if len(secret) >= _IDENTITY_MIN_LENGTH and secret in key:
            return True
    return False


def _is_repetitive(compact: str) -> bool:
    """Few distinct characters, a short unit repeated, or at most two simple runs."""
    if len(set(compact)) <= 2:
        return True
    if any(_repeats_unit(compact, size) for size in range(3, _REPEAT_UNIT_MAX + 1)):
        return True
    if len(compact) < _SIMPLE_RUNS_MIN_LENGTH:
        return False
    return _count_simple_runs(compact, limit=_SIMPLE_RUNS_MAX) <= _SIMPLE_RUNS_MAX


def _repeats_unit(text: str, size: int) -> bool:
    return len(text) >= 2 * size and all(c == text[i % size] for i, c in enumerate(text))


def _count_simple_runs(text: str, *, limit: int) -> int:
    """How many simple runs cover `text`, stopping once past `limit`.

    Taking the longest run at each step gives the fewest runs, because any part of a simple run
    is itself simple.
    """
    runs, start = 0, 0
    while start < len(text) and runs <= limit:
        start = max(_step_run_end(text, start), _row_run_end(text, start))
        runs += 1
    return runs


def _step_run_end(text: str, start: int) -> int:
    """End of the longest run from `start` whose code points go up or down by one, or repeat.

    Any two characters form a run, so the end is at least `start + 2`.
    """
    end = min(start + 2, len(text))
    if end - start < 2:
        return end
    step = ord(text[start + 1]) - ord(text[start])
    if abs(step) > 1:
        return end
    while end < len(text) and ord(text[end]) - ord(text[end - 1]) == step:
        end += 1
    return end


@functools.cache
def _keyboard_rows() -> tuple[str, ...]:
    rows = ["".join(arabic_fold(row).split()) for row in _KEYBOARD_ROWS_RAW]
    return tuple(rows + [row[::-1] for row in rows])


def _row_run_end(text: str, start: int) -> int:
    """End of the longest run from `start` that is typed along one keyboard row."""
    best = start
    for row in _keyboard_rows():
        position = row.find(text[start])
        while position != -1:
            length = 0
            while (
                start + length < len(text)
                and position + length < len(row)
                and row[position + length] == text[start + length]
            ):
                length += 1
            best = max(best, start + length)
            position = row.find(text[start], position + 1)
    return best
