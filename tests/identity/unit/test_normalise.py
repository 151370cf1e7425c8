"""Arabic-aware folding for lookup keys and recovery answers; display values are only tidied."""

# The point of these tests is text that looks alike but differs (Arabic, full-width forms).
# ruff: noqa: RUF001

from __future__ import annotations

from collections.abc import Callable

import pytest

from moment_identity.domain.normalise import (
    arabic_fold,
    collapse_whitespace,
    display_text,
    email_key,
    loose_key,
    nfkc,
    recovery_answer_key,
    username_key,
)

HAMZA_ABOVE = "\u0654"
RLM = "\u200f"
ZWNJ = "\u200c"

KEY_FUNCTIONS: list[Callable[[str], str]] = [
    arabic_fold,
    username_key,
    email_key,
    loose_key,
    recovery_answer_key,
    display_text,
]

SAMPLES = [
    "أحمد",
    "إحمد",
    "آمنة",
    "مُحَمَّد",
    "علـــي",
    "مستشفى",
    "مدرسة",
    "مسؤول",
    "رئيس",
    "ﻻ",
    "ﷺ",
    "٢٠٢٤",
    "۱۴۰۳",
    "ÉCOLE",
    "école",
    "ＡＢＣ",
    "Straße",
    "ǰ",
    "İstanbul",
    "  spaced \t out \n text  ",
    f"علي{RLM}",
    "Al-Nour, the café!",
    "نعم، بالتأكيد؟",
    "e.\u0301",
    "",
    "🙂 emoji 👍🏽",
]


@pytest.mark.parametrize(
    ("variant", "canonical"),
    [
        ("أحمد", "احمد"),
        ("إحمد", "احمد"),
        ("آدم", "ادم"),
        ("ٱلله", "الله"),
        ("مدرسة", "مدرسه"),
        ("مُحَمَّد", "محمد"),
        ("علـــي", "علي"),
        ("مستشفى", "مستشفي"),
        ("مسؤول", "مسوول"),
        ("رئيس", "رييس"),
        ("علی", "علي"),  # Persian yeh
        ("کتاب", "كتاب"),  # Persian keheh
        ("٢٠٢٤", "2024"),
        ("۲۰۲۴", "2024"),
        ("ÉCOLE", "école"),
        ("ＡＢＣ", "abc"),
        ("ﻻ", "لا"),  # presentation-form ligature
        ("ا" + HAMZA_ABOVE + "حمد", "احمد"),  # hamza typed as a combining mark
        (f"علي{RLM}", "علي"),
        (f"می{ZWNJ}خواهم", "ميخواهم"),
        ("  علي   أحمد \t", "علي احمد"),
        ("سُبْحَانَ ٱللَّٰهِ", "سبحان الله"),  # superscript alef and shadda
    ],
)
def test_arabic_fold_makes_spelling_variants_equal(variant: str, canonical: str) -> None:
    assert arabic_fold(variant) == arabic_fold(canonical) == canonical


def test_arabic_fold_keeps_the_standalone_hamza() -> None:
    assert arabic_fold("سماء") == "سماء"
    assert arabic_fold("سماء") != arabic_fold("سما")


def test_username_key_matches_arabic_usernames_across_spelling_variants() -> None:
    assert username_key("أحمد_العلي") == username_key("احمد_العلى") == username_key(" إحمد_العلي ")


def test_username_key_folds_latin_case_and_width() -> None:
    assert username_key("  Ahmed ") == username_key("ＡＨＭＥＤ") == "ahmed"


def test_email_key_folds_the_whole_address() -> None:
    assert email_key("  Ahmed.Ali@Example.COM ") == "ahmed.ali@example.com"
    assert email_key("ａｈｍｅｄ＠ｅｘａｍｐｌｅ．ｃｏｍ") == "ahmed@example.com"


@pytest.mark.parametrize(
    ("variant", "canonical"),
    [
        ("عبد الله", "عبدالله"),
        ("نعم، بالتأكيد؟", "نعمبالتاكيد"),
        ("مدينة: الرياض؛", "مدينهالرياض"),
        ("Al-Nour!", "alnour"),
        ("  New   York. ", "newyork"),
        ("Fido (my dog)", "fidomydog"),
        ("«القاهرة»", "القاهره"),
    ],
)
def test_recovery_answer_key_ignores_punctuation_spacing_and_spelling(
    variant: str, canonical: str
) -> None:
    assert recovery_answer_key(variant) == canonical


def test_recovery_answer_key_keeps_the_definite_article() -> None:
    assert recovery_answer_key("المدرسة") != recovery_answer_key("مدرسة")


def test_display_text_tidies_without_folding() -> None:
    assert display_text("  Ahmed \t  Ali\n") == "Ahmed Ali"
    assert display_text(" مُحَمَّد  العلي ") == "مُحَمَّد العلي"
    assert display_text("ＡＢＣ Café") == "ABC Café"


def test_nfkc_and_collapse_whitespace_are_still_exported() -> None:
    assert nfkc("ﬁ") == "fi"
    assert collapse_whitespace(" a \u00a0 b\n") == "a b"


@pytest.mark.parametrize("function", KEY_FUNCTIONS, ids=lambda f: f.__name__)
def test_every_normaliser_is_idempotent_on_samples(function: Callable[[str], str]) -> None:
    for sample in SAMPLES:
        once = function(sample)
        assert function(once) == once, ascii(sample)


@pytest.mark.parametrize("function", KEY_FUNCTIONS, ids=lambda f: f.__name__)
def test_every_normaliser_is_idempotent_across_arabic_and_latin_blocks(
    function: Callable[[str], str],
) -> None:
    blocks = [
        range(0x0000, 0x0250),  # Basic Latin to Latin Extended-B
        range(0x0300, 0x0370),  # combining diacritics
        range(0x0600, 0x0780),  # Arabic, Arabic Supplement
        range(0x2000, 0x2070),  # general punctuation, spaces and invisible controls
        range(0xFB50, 0xFE00),  # Arabic presentation forms A
        range(0xFE70, 0xFF00),  # Arabic presentation forms B
        range(0xFF00, 0xFFF0),  # half-width and full-width forms
    ]
    for block in blocks:
        for code_point in block:
            for sample in (chr(code_point), "ا" + chr(code_point) + HAMZA_ABOVE):
                once = function(sample)
                assert function(once) == once, hex(code_point)
