"""The fast canonical encoder writes exactly what rfc8785 writes, byte for byte."""

from __future__ import annotations

from typing import Any

import rfc8785
from hypothesis import example, given, settings
from hypothesis import strategies as st

from moment_audit.domain.chain import canonical, fast_encodable

# Every code point but lone surrogates (which neither encoder can write as UTF-8), with the
# characters JSON encoders most often disagree on drawn more often.
TRICKY = '\x00\x01\x08\t\n\x0b\x0c\r\x1f\x7f"\\/\u2028\u2029\ufeff\U0001f600\u00e9\u0645'
characters = st.characters(exclude_categories=["Cs"])
strings = st.text(characters) | st.text(st.sampled_from(TRICKY) | characters)
ascii_keys = st.text(st.characters(max_codepoint=127))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),
    strings,
)


def documents(keys: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, Any]]:
    values = st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
        max_leaves=12,
    )
    return st.dictionaries(keys, values, max_size=18)


@settings(max_examples=400, deadline=None)
@given(documents(ascii_keys))
@example({"fields": ["email"], "purpose": None, "seq": 1, "ok": True, "a": "\u2028\x00\x1f\x7f"})
def test_the_fast_encoder_matches_rfc8785(document: dict[str, Any]) -> None:
    assert fast_encodable(document)
    assert canonical(document).encode() == rfc8785.dumps(document)


@settings(max_examples=100, deadline=None)
@given(documents(strings))
@example({"\ue000": 1, "\U0001f600": 2})
def test_other_keys_are_sorted_as_rfc8785_sorts_them(document: dict[str, Any]) -> None:
    assert canonical(document).encode() == rfc8785.dumps(document)


@given(st.dictionaries(ascii_keys, st.floats(allow_nan=False, allow_infinity=False), min_size=1))
def test_floats_go_through_rfc8785(document: dict[str, float]) -> None:
    assert not fast_encodable(document)
    assert canonical(document).encode() == rfc8785.dumps(document)
